"""Reading a labelling config: which labels take which model classes, thresholds, and errors a user can act on."""

from __future__ import annotations

import pytest

from label_studio_yolo.label_config import (
    LabelConfigError,
    LabelMap,
    parse_label_config,
    unmapped_control_hint,
)


def config(labels: str, control_attrs: str = "") -> str:
    return f"""<View>
  <Image name="img" value="$img"/>
  <RectangleLabels name="label" toName="img" {control_attrs}>
    {labels}
  </RectangleLabels>
</View>"""


def test_predicted_values_map_every_listed_class_to_the_label():
    spec = parse_label_config(config('<Label value="Vehicle" predicted_values="car, truck ,bus"/>'), 0.5)[0]

    assert spec.labels.label_for("car") == "Vehicle"
    assert spec.labels.label_for("truck") == "Vehicle"
    assert spec.labels.label_for("bus") == "Vehicle"
    assert spec.labels.label_for("person") is None


def test_label_without_predicted_values_takes_class_of_same_name_ignoring_case():
    spec = parse_label_config(config('<Label value="Person"/>'), 0.5)[0]

    assert spec.labels.label_for("person") == "Person"
    assert spec.labels.by_class == {"person": "Person"}


def test_first_label_in_config_wins_when_two_claim_one_class():
    labels = '<Label value="Car" predicted_values="car"/><Label value="Auto" predicted_values="car,van"/>'
    spec = parse_label_config(config(labels), 0.5)[0]

    assert spec.labels.label_for("car") == "Car"
    assert spec.labels.label_for("van") == "Auto"


def test_model_score_threshold_attribute_overrides_default():
    spec = parse_label_config(config('<Label value="cat"/>', 'model_score_threshold="0.3"'), 0.5)[0]

    assert spec.threshold == pytest.approx(0.3)


def test_default_threshold_used_when_attribute_absent():
    spec = parse_label_config(config('<Label value="cat"/>'), 0.42)[0]

    assert spec.threshold == pytest.approx(0.42)


@pytest.mark.parametrize("raw", ["abc", "1.5", "-0.1"])
def test_invalid_threshold_is_refused_with_corrected_xml(raw):
    with pytest.raises(LabelConfigError) as error:
        parse_label_config(config('<Label value="cat"/>', f'model_score_threshold="{raw}"'), 0.5)

    message = str(error.value)
    assert f'model_score_threshold="{raw}"' in message
    assert '<RectangleLabels name="label" toName="..." model_score_threshold="0.25">' in message


def test_config_without_supported_control_shows_an_example_config():
    choices_only = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="Positive"/></Choices>
</View>"""
    with pytest.raises(LabelConfigError) as error:
        parse_label_config(choices_only, 0.5)

    message = str(error.value)
    assert "<Choices name='sentiment'>" in message
    assert "<RectangleLabels" in message
    assert 'predicted_values="car,truck"' in message


def test_broken_xml_raises_label_config_error():
    with pytest.raises(LabelConfigError, match="could not be parsed"):
        parse_label_config('<View><Image name="img" value="$img"', 0.5)


def test_value_key_names_the_task_data_field_of_the_image():
    spec = parse_label_config(config('<Label value="cat"/>'), 0.5)[0]

    assert spec.value_key == "img"
    assert (spec.from_name, spec.to_name, spec.control_type) == ("label", "img", "RectangleLabels")


def test_two_rectangle_controls_on_two_images_are_both_parsed():
    two = """<View>
  <Image name="front" value="$front_url"/>
  <Image name="back" value="$back_url"/>
  <RectangleLabels name="front_boxes" toName="front" model_score_threshold="0.2">
    <Label value="Car"/>
  </RectangleLabels>
  <RectangleLabels name="back_boxes" toName="back">
    <Label value="Person"/>
  </RectangleLabels>
</View>"""
    specs = {spec.from_name: spec for spec in parse_label_config(two, 0.6)}

    assert set(specs) == {"front_boxes", "back_boxes"}
    assert (specs["front_boxes"].to_name, specs["front_boxes"].value_key) == ("front", "front_url")
    assert (specs["back_boxes"].to_name, specs["back_boxes"].value_key) == ("back", "back_url")
    assert specs["front_boxes"].threshold == pytest.approx(0.2)
    assert specs["back_boxes"].threshold == pytest.approx(0.6)
    assert specs["front_boxes"].labels.label_for("car") == "Car"
    assert specs["back_boxes"].labels.label_for("car") is None


def test_label_map_restricted_to_keeps_only_classes_the_model_has():
    labels = LabelMap({"car": "Vehicle", "truck": "Vehicle", "person": "Person"})

    restricted = labels.restricted_to(["Car", "person", "dog"])

    assert restricted.by_class == {"car": "Vehicle", "person": "Person"}
    assert restricted.label_for("truck") is None


def test_unmapped_control_hint_lists_model_classes_and_shows_predicted_values_example():
    spec = parse_label_config(config('<Label value="Cat"/>'), 0.5)[0]

    hint = unmapped_control_hint(spec, ["red", "blue"])

    assert "(blue, red)" in hint
    assert '<RectangleLabels name="label">' in hint
    assert '<Label value="Cat" predicted_values="blue"/>' in hint
