"""``<Choices>`` (label_studio_yolo.tags.choices): class probabilities -> the image's choice, and an annotation's
choice -> the class a classification model learns for the image."""

from __future__ import annotations

import pytest

from label_studio_yolo.errors import AnnotationError
from label_studio_yolo.geometry import ImageSize
from label_studio_yolo.inference.outputs import ClassScore, ModelOutput
from label_studio_yolo.label_config import ControlSpec, parse_label_config
from label_studio_yolo.tags import ChoicesControl, supported_controls
from label_studio_yolo.tags.choices import ChoiceRegion
from label_studio_yolo.training.annotations import read_region
from label_studio_yolo.training.plan import TrainingPlan

SIZE = ImageSize(200, 100)


def choices_spec(multiple: bool = False, choices: str | None = None) -> ControlSpec:
    """``<Choices name="kind">``: 'Reddish' takes classes red and crimson, 'Blue' and 'Green' their namesakes."""
    choice = ' choice="multiple"' if multiple else ""
    choices = choices or (
        '<Choice value="Reddish" predicted_values="red,crimson"/><Choice value="Blue"/><Choice value="Green"/>'
    )
    config = f"""<View><Image name="image" value="$image"/>
      <Choices name="kind" toName="image" model_score_threshold="0.2"{choice}>{choices}</Choices></View>"""
    return parse_label_config(config, 0.5, supported_controls())[0]


def scores(*pairs: tuple[str, float]) -> ModelOutput:
    """A classification model's output: every class's probability, best first."""
    return ModelOutput(SIZE, classes=[ClassScore(name, score) for name, score in pairs])


# ------------------------------------------------------------------------------------------------------ predicting


def test_the_best_class_a_choice_claims_at_or_above_the_threshold_is_the_one_choice(classify_weights) -> None:
    output = scores(("purple", 0.7), ("blue", 0.2), ("red", 0.1))  # purple: no choice claims it

    (region,) = ChoicesControl(choices_spec(), classify_weights).regions(output)

    assert {key: region[key] for key in ("from_name", "to_name", "type", "value", "score")} == {
        "from_name": "kind",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": ["Blue"]},
        "score": 0.2,
    }
    assert "original_width" not in region, "a whole-image region has no geometry"


def test_multiple_choice_lists_each_choice_once_best_first_scored_by_the_best(classify_weights) -> None:
    output = scores(("crimson", 0.5), ("blue", 0.31234), ("red", 0.3), ("green", 0.19))

    (region,) = ChoicesControl(choices_spec(multiple=True), classify_weights).regions(output)

    assert region["value"]["choices"] == ["Reddish", "Blue"]  # red is Reddish again; green is below 0.2
    assert region["score"] == 0.5


def test_no_region_when_no_claimed_class_reaches_the_threshold(classify_weights) -> None:
    output = scores(("purple", 0.9), ("blue", 0.05), ("red", 0.05))

    assert ChoicesControl(choices_spec(multiple=True), classify_weights).regions(output) == []


def test_a_detection_model_cannot_fill_choices_and_the_message_names_a_classifier(detect_weights) -> None:
    assert ChoicesControl(choices_spec(), detect_weights).unusable_reason() == (
        "<Choices> needs a classify model, but boxes.pt is a detect model. Name one for this tag, "
        'e.g. <Choices name="kind" toName="image" model_path="yolo11n-cls.pt">.'
    )


def test_choices_that_take_no_class_of_the_model_make_the_control_unusable(classify_weights) -> None:
    reason = ChoicesControl(choices_spec(choices='<Choice value="Green"/>'), classify_weights).unusable_reason()

    assert reason is not None
    assert '<Choices name="kind">' in reason and "matches a class of the model (blue, red)." in reason
    assert ChoicesControl(choices_spec(), classify_weights).unusable_reason() is None


def test_the_fix_shown_for_unclaimed_choices_is_a_choice_tag(classify_weights) -> None:
    """Label Studio's ``<Choices>`` holds ``<Choice>`` tags: a ``<Label>`` pasted from the hint would not be one."""
    reason = ChoicesControl(choices_spec(choices='<Choice value="Green"/>'), classify_weights).unusable_reason()

    assert reason is not None
    assert '<Choice value="Green" predicted_values="blue"/>' in reason
    assert "<Label" not in reason


# -------------------------------------------------------------------------------------------------------- learning


def choice_item(*choices: str) -> dict[str, object]:
    """A choice as Label Studio exports it in an annotation's ``result``."""
    return {"id": "c1", "from_name": "kind", "to_name": "image", "type": "choices", "value": {"choices": list(choices)}}


def test_an_annotation_s_choice_is_read_as_its_first_choice() -> None:
    assert read_region(choice_item("Blue", "Reddish")) == ChoiceRegion("kind", "Blue")
    assert ChoicesControl.read_region(choice_item("Green"), "Green") == ChoiceRegion("kind", "Green")


def test_the_image_s_class_is_the_first_choice_of_the_control() -> None:
    regions = [ChoiceRegion("kind", "Green"), ChoiceRegion("kind", "Blue")]

    assert ChoicesControl.image_class(regions, choices_spec()) == "Green"


def test_an_annotation_without_a_choice_cannot_teach_a_class() -> None:
    with pytest.raises(AnnotationError, match=r"^the annotation has no choice of <Choices name='kind'>$"):
        ChoicesControl.image_class([], choices_spec())


def test_a_choice_no_longer_in_the_config_cannot_teach_a_class() -> None:
    with pytest.raises(AnnotationError, match=r"^choice 'Purple' is not a <Choice> of <Choices name='kind'> any more$"):
        ChoicesControl.image_class([ChoiceRegion("kind", "Purple")], choices_spec())


def test_choices_give_a_classification_model_no_objects() -> None:
    regions = [ChoiceRegion("kind", "Blue")]

    assert ChoicesControl.training_objects(TrainingPlan("classify", choices_spec()), regions, SIZE) == []
