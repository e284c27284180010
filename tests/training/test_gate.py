"""The publishing gate: per label on the same val images, not fooled by averages or by one image."""

from __future__ import annotations

from label_studio_yolo.training.evaluate import LabelScore
from label_studio_yolo.training.gate import GateRules, judge

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
    assert decision.reason == "Person drops 0.81 -> 0.55 (tolerance 0.08)"
    person = next(v for v in decision.labels if v.label == "Person")
    assert (person.verdict, person.objects) == ("dropped", 12)
    assert [v.verdict for v in decision.labels if v.label != "Person"] == ["new label", "new label"]


def test_learning_new_labels_while_keeping_the_old_one_within_its_tolerance_is_published() -> None:
    old = scores(Person=(0.81, 12), Cup=(0.0, 6))
    new = scores(Person=(0.75, 12), Cup=(0.9, 6))
    decision = judge(old, new, already_predicted={"Person"}, val_images=8, rules=RULES)
    assert decision.publish, decision.reason
    assert {v.label: v.verdict for v in decision.labels} == {"Person": "kept", "Cup": "new label"}


def test_the_tolerance_is_one_object_of_the_label_but_never_below_the_setting() -> None:
    old = scores(Person=(0.9, 10))
    assert judge(old, scores(Person=(0.95, 10)), {"Person"}, 6, RULES).publish
    kept = judge(old, scores(Person=(0.8, 10)), {"Person"}, 6, RULES)  # one object of ten: not better, not worse
    assert (kept.labels[0].tolerance, kept.labels[0].verdict) == (0.1, "kept")
    assert not kept.publish and kept.reason.startswith("not better overall")
    many = judge(scores(Person=(0.9, 100)), scores(Person=(0.84, 100)), {"Person"}, 60, RULES)
    assert (many.labels[0].tolerance, many.labels[0].verdict) == (0.05, "dropped")


def test_one_val_image_never_publishes() -> None:
    # The case: 14 tasks gave one val task with one box of one class; the old label was never scored.
    decision = judge(
        scores(Cup=(0.0, 1)), scores(Cup=(1.0, 1)), already_predicted={"Person"}, val_images=1, rules=RULES
    )
    assert not decision.publish
    assert decision.reason == "too little data to judge: 1 val images, the gate needs 4"


def test_an_old_label_with_too_few_val_objects_cannot_be_judged_so_the_version_waits() -> None:
    old, new = scores(Person=(0.9, 2), Cup=(0.0, 8)), scores(Person=(0.9, 2), Cup=(0.9, 8))
    decision = judge(old, new, already_predicted={"Person"}, val_images=6, rules=RULES)
    assert not decision.publish
    assert "Person (2 val objects, the gate needs 3)" in decision.reason


def test_an_old_label_nobody_annotated_could_be_forgotten_unseen_so_the_version_waits() -> None:
    decision = judge(
        scores(Cup=(0.0, 8)), scores(Cup=(0.7, 8)), already_predicted={"Person"}, val_images=6, rules=RULES
    )
    assert not decision.publish
    assert decision.reason == "too little data to judge Person (0 val objects, the gate needs 3)"


def test_publish_policy_always_publishes_but_still_says_what_the_gate_found() -> None:
    old, new = scores(Person=(0.81, 12)), scores(Person=(0.2, 12))
    decision = judge(old, new, {"Person"}, 8, GateRules(policy="always"))
    assert decision.publish
    assert (
        decision.reason
        == "published by TRAIN_PUBLISH_POLICY=always although Person drops 0.81 -> 0.20 (tolerance 0.08)"
    )


def test_the_decision_goes_into_meta_json_with_every_label() -> None:
    decision = judge(scores(Person=(0.8, 5)), scores(Person=(0.9, 5)), {"Person"}, 5, RULES)
    assert decision.as_dict() == {
        "publish": True,
        "reason": "better overall (0.800 -> 0.900) and no label it predicted dropped",
        "old_mean": 0.8,
        "new_mean": 0.9,
        "labels": {"Person": {"objects": 5, "old": 0.8, "new": 0.9, "tolerance": 0.2, "verdict": "better"}},
    }
