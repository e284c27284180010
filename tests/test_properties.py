"""Property-based tests (hypothesis) of the config mapping and the region conversion.

Whatever labels, ``predicted_values`` and detections a project throws at the backend, every region it returns lies
inside the image (0-100 percent), carries a label from the config, and keeps only scores at the threshold or above.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from label_studio_yolo.errors import LabelConfigError
from label_studio_yolo.geometry import ImageSize, rectangle_corners, rotated_corners, rotated_rectangle_percent
from label_studio_yolo.inference.outputs import Detection, ModelOutput, RotatedBox
from label_studio_yolo.inference.weights import LoadedWeights, load_weights
from label_studio_yolo.label_config import parse_label_config
from label_studio_yolo.tags import PolygonLabelsControl, RectangleLabelsControl, supported_controls

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "150")),
    derandomize="HYPOTHESIS_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
"""The suite tries the same 150 examples every run (a red CI must mean a change broke something);
``HYPOTHESIS_EXAMPLES=5000`` searches randomly and deeper. The SDK's XML parsing makes the first examples slow."""

NAME_CHARACTERS = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters=",\ufffe\uffff")
"""Characters of a label or class name: any text XML allows, even ``<&"'``; a comma separates classes."""

names = st.text(NAME_CHARACTERS, min_size=1, max_size=12).filter(lambda text: text.strip() == text and text != "")
"""A label value or class name (Label Studio trims the whitespace around label values)."""


@st.composite
def label_configs(draw: st.DrawFn) -> tuple[str, dict[str, list[str] | None]]:
    """A ``<RectangleLabels>`` config and its labels, each with the classes it lists (None: no predicted_values)."""
    labels = draw(st.lists(names, min_size=1, max_size=6, unique_by=str.lower))
    claims: dict[str, list[str] | None] = {}
    for label in labels:
        classes = draw(st.none() | st.lists(names, min_size=1, max_size=4))
        claims[label] = classes
    lines = []
    for label, classes in claims.items():
        listed = ""
        if classes is not None:
            spaced = [draw(st.sampled_from(["", " ", "  "])) + name for name in classes]
            listed = f" predicted_values={quoteattr(','.join(spaced))}"
        lines.append(f"<Label value={quoteattr(label)}{listed}/>")
    config = (
        '<View><Image name="image" value="$image"/>'
        f'<RectangleLabels name="label" toName="image">{"".join(lines)}</RectangleLabels></View>'
    )
    return config, claims


def first_claim(claims: dict[str, list[str] | None], class_name: str) -> str | None:
    """The label the first ``<Label>`` listing ``class_name`` (case-insensitively) names, as the docs promise."""
    for label, classes in claims.items():
        if class_name.lower() in {name.lower() for name in (classes if classes is not None else [label])}:
            return label
    return None


@PROPERTY_SETTINGS
@given(label_configs(), st.lists(names, max_size=5))
def test_every_class_maps_to_the_first_label_that_claims_it(
    config_and_claims: tuple[str, dict[str, list[str] | None]], other_classes: list[str]
) -> None:
    config, claims = config_and_claims
    spec = parse_label_config(config, 0.5)[0]
    listed = [name for label, classes in claims.items() for name in (classes if classes is not None else [label])]

    for class_name in listed + other_classes + [name.upper() for name in listed]:
        label = spec.labels.label_for(class_name)
        assert label == first_claim(claims, class_name)
        assert label is None or label in claims


@PROPERTY_SETTINGS
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8)))
@example("0.25")
@example("1e-3")
@example("nan")
def test_a_threshold_is_a_number_from_0_to_1_or_a_clear_error(raw: str) -> None:
    config = (
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="image" '
        f'model_score_threshold={quoteattr(raw)}><Label value="Car"/></RectangleLabels></View>'
    )
    try:
        threshold = parse_label_config(config, 0.5)[0].threshold
    except LabelConfigError as error:
        assert "must be a number from 0 to 1" in str(error) or "could not be parsed" in str(error)
    else:
        assert 0.0 <= threshold <= 1.0


@pytest.fixture(scope="module")
def weights(model_root: Path) -> LoadedWeights:
    return load_weights(model_root, "boxes.pt")


REGION_CONFIG = """<View><Image name="image" value="$image"/>
  <{tag} name="objects" toName="image" model_score_threshold="0.3">
    <Label value="Red box" predicted_values="red"/><Label value="Blue" predicted_values="blue"/>
  </{tag}></View>"""
"""Configs of the two object controls; class ``green`` is claimed by no label."""

sizes = st.builds(ImageSize, st.integers(1, 8000), st.integers(1, 8000))
coordinates = st.floats(-20000, 20000, allow_nan=False)


@st.composite
def detections(draw: st.DrawFn, size: ImageSize) -> Detection:
    """A detection anywhere, even partly or wholly outside the image, maybe rotated (OBB)."""
    x0, x1 = sorted((draw(coordinates), draw(coordinates)))
    y0, y1 = sorted((draw(coordinates), draw(coordinates)))
    rotated = draw(
        st.none()
        | st.builds(
            RotatedBox,
            cx=coordinates,
            cy=coordinates,
            width=st.floats(0, 20000),
            height=st.floats(0, 20000),
            angle=st.floats(-2 * math.pi, 2 * math.pi),
        )
    )
    return Detection(
        class_name=draw(st.sampled_from(["red", "blue", "green", "RED"])),
        score=draw(st.floats(0, 1)),
        x0=x0,
        y0=y0,
        x1=x1,
        y1=y1,
        rotated=rotated,
    )


@st.composite
def model_outputs(draw: st.DrawFn) -> ModelOutput:
    size = draw(sizes)
    return ModelOutput(size, draw(st.lists(detections(size), max_size=8)))


def assert_inside_image(value: dict[str, object]) -> None:
    for key in ("x", "y", "width", "height"):
        if key in value:
            assert 0.0 <= float(value[key]) <= 100.0, (key, value)  # type: ignore[arg-type]
    for point in value.get("points", []):  # type: ignore[attr-defined]
        assert all(0.0 <= coordinate <= 100.0 for coordinate in point), value


@PROPERTY_SETTINGS
@given(model_outputs(), st.sampled_from(["RectangleLabels", "PolygonLabels"]))
def test_regions_lie_inside_the_image_with_config_labels_above_threshold(
    weights: LoadedWeights, output: ModelOutput, tag: str
) -> None:
    spec = parse_label_config(REGION_CONFIG.format(tag=tag), 0.5, supported_controls())[0]
    control = (RectangleLabelsControl if tag == "RectangleLabels" else PolygonLabelsControl)(spec, weights)

    regions = control.regions(output)

    kept = [d for d in output.detections if d.class_name.lower() != "green" and d.score >= 0.3]
    assert len(regions) == len(kept)
    for region in regions:
        value = region["value"]
        assert value[tag.lower()] in (["Red box"], ["Blue"])
        assert region["score"] >= 0.3 and region["from_name"] == "objects" and region["to_name"] == "image"
        assert (region["original_width"], region["original_height"]) == (output.size.width, output.size.height)
        assert_inside_image(value)
        if tag == "RectangleLabels" and value.get("rotation", 0) == 0:
            assert value["x"] + value["width"] <= 100.0 + 1e-9 and value["y"] + value["height"] <= 100.0 + 1e-9
        assert 0.0 <= value.get("rotation", 0) < 360.0


@PROPERTY_SETTINGS
@given(
    sizes,
    st.floats(0.05, 0.95),
    st.floats(0.05, 0.95),
    st.floats(0.01, 0.3),
    st.floats(0.01, 0.3),
    st.floats(-math.pi, math.pi),
)
def test_a_rotated_box_inside_the_image_comes_back_from_label_studio_coordinates(
    size: ImageSize, cx_share: float, cy_share: float, width_share: float, height_share: float, angle: float
) -> None:
    cx, cy = cx_share * size.width, cy_share * size.height
    width, height = width_share * size.width, height_share * size.height
    corners = rotated_corners(cx, cy, width, height, angle)
    if not all(0 <= x <= size.width and 0 <= y <= size.height for x, y in corners):
        return  # a corner outside the image is clipped: the round trip is not the identity there

    value = rotated_rectangle_percent(cx, cy, width, height, angle, size)
    back = rectangle_corners(value["x"], value["y"], value["width"], value["height"], value["rotation"], size)

    tolerance = 1e-6 * max(size.width, size.height)
    for (x, y), (expected_x, expected_y) in zip(back, corners, strict=True):
        assert x == pytest.approx(expected_x, abs=tolerance) and y == pytest.approx(expected_y, abs=tolerance)
