"""Reading a labelling config: which labels take which model classes, thresholds, and errors a user can act on."""

from __future__ import annotations

import pytest

from label_studio_yolo.errors import LabelConfigError
from label_studio_yolo.label_config import LabelMap, parse_label_config, unmapped_control_hint, with_own_labels


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


KEYPOINTS = """<View>
  <Image name="img" value="$img"/>
  <KeyPointLabels name="kp" toName="img">
    <Label value="Nose" model_index="0" predicted_values="person"/>
    <Label value="Left eye" predicted_values="1"/>
    <Label value="Right eye"/>
    <Label value="Tail" model_index="7" predicted_values="cat, Dog"/>
  </KeyPointLabels>
</View>"""

ALL_TAGS = {
    "KeyPointLabels": {"Image"},
    "VideoRectangle": {"Video"},
    "RectangleLabels": {"Image"},
}


def test_keypoint_labels_take_model_index_else_integer_predicted_values_else_their_position():
    spec = parse_label_config(KEYPOINTS, 0.5, ALL_TAGS)[0]
    points = {point.label: point for point in spec.keypoints}

    assert (points["Nose"].index, points["Nose"].classes) == (0, frozenset({"person"}))
    assert (points["Left eye"].index, points["Left eye"].classes) == (1, None)
    assert (points["Right eye"].index, points["Right eye"].classes) == (2, None)
    assert (points["Tail"].index, points["Tail"].classes) == (7, frozenset({"cat", "dog"}))
    assert points["Tail"].accepts("DOG") and not points["Tail"].accepts("person")
    assert points["Left eye"].accepts("anything")


def test_keypoint_label_with_a_non_integer_index_is_refused_with_corrected_xml():
    bad = KEYPOINTS.replace('model_index="7"', 'model_index="tail"')
    with pytest.raises(LabelConfigError, match='model_index="0" predicted_values="person"'):
        parse_label_config(bad, 0.5, ALL_TAGS)


def test_trained_version_keeps_keypoint_indices_for_any_class():
    spec = with_own_labels(parse_label_config(KEYPOINTS, 0.5, ALL_TAGS)[0])

    assert [(p.label, p.index, p.classes) for p in spec.keypoints] == [
        ("Nose", 0, None),
        ("Left eye", 1, None),
        ("Right eye", 2, None),
        ("Tail", 7, None),
    ]


def test_video_rectangle_takes_its_labels_from_the_labels_tag_on_the_same_video():
    video = """<View>
  <Video name="video" value="$video" framerate="25"/>
  <Labels name="kinds" toName="video">
    <Label value="Car" predicted_values="car,truck"/>
    <Label value="Person"/>
  </Labels>
  <VideoRectangle name="box" toName="video"/>
</View>"""
    spec = parse_label_config(video, 0.5, ALL_TAGS)[0]

    assert (spec.control_type, spec.object_type, spec.value_key) == ("VideoRectangle", "Video", "video")
    assert spec.labels.label_for("truck") == "Car" and spec.labels.label_for("person") == "Person"
    assert spec.label_names == ("Car", "Person")


def test_a_control_on_an_object_it_cannot_label_is_not_filled():
    rectangles_on_video = """<View>
  <Video name="video" value="$video"/>
  <RectangleLabels name="box" toName="video"><Label value="Car"/></RectangleLabels>
</View>"""
    with pytest.raises(LabelConfigError, match="RectangleLabels on Image"):
        parse_label_config(rectangles_on_video, 0.5, ALL_TAGS)
