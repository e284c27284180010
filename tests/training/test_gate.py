"""The publishing gate: per label on the same val images, not fooled by averages or by one image."""

from __future__ import annotations

from label_studio_yolo.training.evaluate import LabelScore
from label_studio_yolo.training.gate import GateRules, Verdict, judge, tolerance_for, upper_bound

RULES = GateRules()


def scores(**values: tuple[float, int]) -> dict[str, LabelScore]:
    return {label: LabelScore(value, count) for label, (value, count) in values.items()}


def test_a_version_that_learns_new_labels_but_forgets_an_old_one_is_refused() -> None:
    # The case: Person 0.81 -> 0.55 while Cup and Cat go 0 -> 0.97 and 0.84; the mean rises 0.27 -> 0.79.
    old = scores(Person=(0.81, 12), Cup=(0.0, 6), Cat=(0.0, 6))
    new = scores(Person=(0.55, 12), Cup=(0.97, 6), Cat=(0.84, 6))
    decision = judge(old, new, already_predicted={"Person"}, val_images=8, rules=RULES)
    assert not decision.publish
    assert decision.new_mean > decision.old_mean, "the average alone would have published it"
    assert decision.reason == "Person drops 0.81 -> 0.55 on 12 val objects (tolerance 0.08)"
    person = next(v for v in decision.labels if v.label == "Person")
    assert (person.verdict, person.objects) == (Verdict.DROPPED, 12)
    assert [v.verdict for v in decision.labels if v.label != "Person"] == [Verdict.NEW_LABEL, Verdict.NEW_LABEL]


def test_learning_new_labels_while_keeping_the_old_one_within_its_tolerance_is_published() -> None:
    old = scores(Person=(0.81, 12), Cup=(0.0, 6))
    new = scores(Person=(0.78, 12), Cup=(0.9, 6))
    decision = judge(old, new, already_predicted={"Person"}, val_images=8, rules=RULES)
    assert decision.publish, decision.reason
    assert {v.label: v.verdict for v in decision.labels} == {"Person": Verdict.KEPT, "Cup": Verdict.NEW_LABEL}
    assert decision.warnings == ()


def test_one_object_lost_of_three_is_beyond_chance_though_it_is_one_objects_share() -> None:
    # 1/n alone forgave 1.00 -> 0.67 on three objects; 0.67 of three cannot reach 0.95 at 95% confidence.
    lost = judge(scores(Person=(1.0, 3)), scores(Person=(0.67, 3)), {"Person"}, 6, RULES)
    assert not lost.publish and lost.labels[0].verdict is Verdict.DROPPED
    assert lost.labels[0].tolerance == tolerance_for(1.0, 3, RULES) < 1 / 3
    assert upper_bound(0.67, 3) < 0.95 <= upper_bound(0.75, 3)
    reordered = judge(scores(Person=(1.0, 3)), scores(Person=(0.9, 3)), {"Person"}, 6, RULES)
    assert reordered.labels[0].verdict is Verdict.KEPT


def test_one_object_of_ten_is_forgiven_and_with_many_objects_the_setting_rules() -> None:
    ten = judge(scores(Person=(0.9, 10)), scores(Person=(0.8, 10)), {"Person"}, 6, RULES)
    assert (ten.labels[0].tolerance, ten.labels[0].verdict) == (0.1, Verdict.KEPT), "one object of ten"
    worse = judge(scores(Person=(0.9, 10)), scores(Person=(0.75, 10)), {"Person"}, 6, RULES)
    assert worse.labels[0].verdict is Verdict.DROPPED
    many = judge(scores(Person=(0.9, 100)), scores(Person=(0.86, 100)), {"Person"}, 60, RULES)
    assert (many.labels[0].tolerance, many.labels[0].verdict) == (0.05, Verdict.KEPT)
    assert not many.publish and many.reason == "worse overall: mean 0.860 vs the served 0.900"


def test_a_tie_at_saturation_is_not_a_regression() -> None:
    # A val set both models get entirely right locked the served version when the mean had to rise.
    decision = judge(
        scores(Person=(1.0, 8), Cup=(1.0, 5)), scores(Person=(1.0, 8), Cup=(1.0, 5)), {"Person", "Cup"}, 6, RULES
    )
    assert decision.publish, decision.reason
    assert decision.reason == "as good overall (1.000 -> 1.000) and no label it predicted dropped"


def test_one_val_image_never_publishes() -> None:
    # The case: 14 tasks gave one val task with one box of one class; the old label was never scored.
    decision = judge(
        scores(Cup=(0.0, 1)), scores(Cup=(1.0, 1)), already_predicted={"Person"}, val_images=1, rules=RULES
    )
    assert not decision.publish
    assert decision.reason == "too little data to judge: 1 val images, the gate needs 4"


def test_a_label_with_few_val_objects_is_judged_with_a_warning() -> None:
    old, new = scores(Person=(0.9, 2), Cup=(0.0, 8)), scores(Person=(0.9, 2), Cup=(0.9, 8))
    decision = judge(old, new, already_predicted={"Person"}, val_images=6, rules=RULES)
    assert decision.publish, decision.reason
    assert decision.warnings == ("Person judged on 2 val objects (TRAIN_GATE_MIN_OBJECTS is 3)",)


def test_a_label_nobody_annotated_warns_and_does_not_hold_back_the_version() -> None:
    # After a first publish every label of the config is "already predicted": one nobody has drawn yet blocked
    # every later version until it had 3 val objects.
    decision = judge(
        scores(Cup=(0.6, 8)), scores(Cup=(0.7, 8)), already_predicted={"Person", "Cup"}, val_images=6, rules=RULES
    )
    assert decision.publish, decision.reason
    assert decision.warnings == ("Person has no val objects: not judged",)
    assert next(v for v in decision.labels if v.label == "Person").verdict is Verdict.NOT_JUDGED


def test_publish_policy_always_publishes_but_still_says_what_the_gate_found() -> None:
    old, new = scores(Person=(0.81, 12)), scores(Person=(0.2, 12))
    decision = judge(old, new, {"Person"}, 8, GateRules(policy="always"))
    assert decision.publish
    assert decision.reason == (
        "published by TRAIN_PUBLISH_POLICY=always although Person drops 0.81 -> 0.20 on 12 val objects (tolerance 0.08)"
    )


def test_the_decision_goes_into_meta_json_with_every_label() -> None:
    decision = judge(scores(Person=(0.8, 5)), scores(Person=(0.9, 5)), {"Person"}, 5, RULES)
    assert decision.as_dict() == {
        "publish": True,
        "reason": "better overall (0.800 -> 0.900) and no label it predicted dropped",
        "old_mean": 0.8,
        "new_mean": 0.9,
        "labels": {"Person": {"objects": 5, "old": 0.8, "new": 0.9, "tolerance": 0.2, "verdict": "better"}},
        "warnings": [],
    }
