"""The vision-language stage through /predict: zero-shot boxes and refined YOLO boxes from a local OpenAI-compatible
server that the real ``openai`` client talks to over HTTP. The server looks at the images it is sent (it finds the
red and blue boxes of the test images), and a script bends its answers into each case: fenced or cut-off JSON,
unknown labels, coordinates off the image, slow answers, errors.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SampleImage, app_client
from label_studio_yolo.vlm.answers import VlmAnswerError, parse_boxes, parse_label
from label_studio_yolo.vlm.stages import ANSWERS
from test_api import PROJECT, pixel_box, predict
from tests.support.vlm_server import Question, Reply, VlmServer, colour_reader, coloured_boxes, serve_vlm

LABELS = {"red": "Crimson", "blue": "Navy"}
"""What the model should call each colour."""

API_KEY = "sk-test-4f2c9a71e0b3d8"

ZERO_SHOT_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" vlm="zero-shot">
    <Label value="Crimson"/>
    <Label value="Navy"/>
  </RectangleLabels>
</View>"""

REFINE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" vlm="refine" model_score_threshold="0.4">
    <Label value="Crimson" predicted_values="red,blue"/>
    <Label value="Navy"/>
  </RectangleLabels>
</View>"""
"""YOLO's classes both map to Crimson: only the model's answers can tell Navy boxes apart."""


@pytest.fixture(autouse=True)
def fresh_answers() -> Iterator[None]:
    ANSWERS.clear()  # answers are cached per process; each test asks its own server
    yield
    ANSWERS.clear()


def vlm_env(monkeypatch: pytest.MonkeyPatch, server: VlmServer, **settings: str) -> None:
    monkeypatch.setenv("VLM_BASE_URL", server.base_url)
    monkeypatch.setenv("VLM_MODEL", "colour-reader")
    monkeypatch.setenv("VLM_API_KEY", API_KEY)
    monkeypatch.setenv("INFERENCE_LANES", "1")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


def tasks_of(samples: list[SampleImage]) -> list[dict[str, Any]]:
    return [{"id": n, "data": {"image": sample.data_uri()}} for n, sample in enumerate(samples)]


def results_for(config: str, tasks: list[dict[str, Any]]) -> tuple[list[Any], str]:
    """The /predict results and the model version of the setup."""
    with app_client() as client:
        setup = client.post("/setup", json={"project": PROJECT, "schema": config})
        assert setup.status_code == 200, setup.json
        answer = predict(client, tasks, config=config)
    assert answer.status_code == 200, answer.json
    return answer.json["results"], setup.json["model_version"]


def labelled_boxes(result: list[dict[str, Any]]) -> list[tuple[str, tuple[float, float, float, float]]]:
    return [(region["value"]["rectanglelabels"][0], pixel_box(region)) for region in result]


def assert_found(result: list[dict[str, Any]], sample: SampleImage, min_iou: float = 0.85) -> None:
    """Each drawn box once, with its colour's label and a tight box (the reader sees JPEG's colour bleed: a pixel
    more on each side)."""
    assert len(result) == len(sample.truth), labelled_boxes(result)
    for truth in sample.truth:
        label, box = max(labelled_boxes(result), key=lambda found: truth.iou(*found[1]))
        assert truth.iou(*box) >= min_iou and label == LABELS[truth.label], (truth, label, box)


# --- Reading answers -----------------------------------------------------------------------------------------------


def test_json_in_a_code_fence_or_after_a_sentence_is_read() -> None:
    plain = '{"objects": [{"label": "Navy", "box": [0.1, 0.2, 0.5, 0.6], "confidence": 0.8}]}'
    for text in (plain, f"```json\n{plain}\n```", f"Here are the objects:\n```\n{plain}", f"Sure. {plain} Done."):
        [box] = parse_boxes(text, ["Crimson", "Navy"])
        assert (box.label, box.x0, box.y0, box.x1, box.y1, box.confidence) == ("Navy", 0.1, 0.2, 0.5, 0.6, 0.8)


def test_an_answer_cut_short_keeps_only_its_complete_boxes() -> None:
    whole = '{"label": "navy", "box": [0.1, 0.2, 0.3, 0.4], "confidence": 0.9}'
    for cut in (
        '{"label": "Crimson", "box": [0.5, 0.5, 0.7',
        '{"label": "Crimson", "box": [0.5, 0.5, 0.7, 0.8], "conf',
    ):
        boxes = parse_boxes(f'{{"objects": [{whole}, {cut}', ["Crimson", "Navy"])
        assert [(box.label, box.x1) for box in boxes] == [("Navy", 0.3)], "the cut box is not guessed at"
    with pytest.raises(VlmAnswerError, match="not valid JSON"):
        parse_boxes('{"objects": [{"label": "Navy", "box": [0.1', ["Navy"])


def test_unknown_labels_and_boxes_that_are_not_fractions_are_left_out() -> None:
    text = json.dumps(
        {
            "objects": [
                {"label": "CRIMSON", "box": [-0.1, 0.1, 0.4, 1.2]},  # slightly off the image: clamped
                {"label": "Cat", "box": [0.1, 0.1, 0.2, 0.2]},  # not a label of the config
                {"label": "Navy", "box": [120, 40, 300, 200]},  # pixels, not fractions
                {"label": "Navy", "box": [0.5, 0.5]},  # not a box
                {"label": "Navy", "box": [0.6, 0.6, 0.6, 0.9]},  # no area
                {"label": "Navy", "box": [0.9, 0.8, 0.7, 0.6], "confidence": "high"},  # reversed corners
            ]
        }
    )
    boxes = parse_boxes(text, ["Crimson", "Navy"])
    assert [(b.label, b.x0, b.y0, b.x1, b.y1, b.confidence) for b in boxes] == [
        ("Crimson", 0.0, 0.1, 0.4, 1.0, None),
        ("Navy", 0.7, 0.6, 0.9, 0.8, None),
    ]


def test_a_crop_answer_names_a_label_none_or_is_an_error() -> None:
    assert parse_label('{"label": "navy", "confidence": 0.7}', ["Crimson", "Navy"]).label == "Navy"
    assert parse_label('```json\n{"label": "none"}\n```', ["Crimson", "Navy"]).label is None
    with pytest.raises(VlmAnswerError, match="'Cat', which is none of Crimson, Navy"):
        parse_label('{"label": "Cat"}', ["Crimson", "Navy"])
    with pytest.raises(VlmAnswerError, match="holds no JSON"):
        parse_label("It looks like a navy box.", ["Crimson", "Navy"])


# --- Zero-shot ------------------------------------------------------------------------------------------------------


def test_zero_shot_gives_regions_for_the_boxes_the_model_sees(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_vlm(colour_reader(LABELS)) as server:
        vlm_env(monkeypatch, server)
        results, version = results_for(ZERO_SHOT_CONFIG, tasks_of(sample_images[:3]))

    for result, sample in zip(results, sample_images, strict=False):
        assert_found(result["result"], sample)
        assert {region["score"] for region in result["result"]} == {0.9}
        assert result["model_version"] == version and version.endswith("+vlm-colour-reader")
    assert len(server.questions) == 3, "one question per task"
    assert {question.authorization for question in server.questions} == {f"Bearer {API_KEY}"}
    assert {question.model for question in server.questions} == {"colour-reader"}
    assert all(question.is_zero_shot and "Crimson, Navy" in question.prompt for question in server.questions)


def test_labels_no_yolo_class_takes_are_filled_zero_shot_once_an_endpoint_is_set(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ZERO_SHOT_CONFIG.replace(' vlm="zero-shot"', "")
    with app_client() as client:
        refused = client.post("/setup", json={"project": PROJECT, "schema": config})
    assert refused.status_code == 400 and "No <Label>" in refused.json["error"], "without an endpoint: YOLO only"

    with serve_vlm(colour_reader(LABELS)) as server:
        vlm_env(monkeypatch, server)
        results, _ = results_for(config, tasks_of(sample_images[:1]))
    assert_found(results[0]["result"], sample_images[0])


def fenced(text: str) -> str:
    return f"Here you go:\n```json\n{text}\n```"


def cut_after_first_object(text: str) -> str:
    return text[: text.index("}, {") + len("}, {") + 12]


def relabelled(text: str) -> str:
    return text.replace('"Navy"', '"Cat"')


def pushed_off_the_image(text: str) -> str:
    data = json.loads(text)
    for item in data["objects"]:
        item["box"] = [item["box"][0] - 0.2, item["box"][1], item["box"][2], 1.1]
    return json.dumps(data)


@pytest.mark.parametrize(
    ("case", "bend", "expected"),
    [
        ("fenced JSON", fenced, "both boxes"),
        ("cut off after the first box", cut_after_first_object, "first box"),
        ("a label the config lacks", relabelled, "red box"),
        ("coordinates off the image", pushed_off_the_image, "clamped"),
    ],
)
def test_zero_shot_reads_what_can_be_read_of_an_imperfect_answer(
    case: str,
    bend: Any,
    expected: str,
    backend_env: Path,
    sample_images: list[SampleImage],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader, sample = colour_reader(LABELS), sample_images[0]
    with serve_vlm(lambda question: Reply(bend(reader(question).text))) as server:
        vlm_env(monkeypatch, server)
        [result], _ = results_for(ZERO_SHOT_CONFIG, tasks_of([sample]))

    found = labelled_boxes(result["result"])
    if expected == "both boxes":
        assert_found(result["result"], sample)
    elif expected == "first box":
        first = coloured_boxes(server.questions[0].image)[0]
        assert [label for label, _ in found] == [LABELS[first[0]]], case
    elif expected == "red box":
        assert [label for label, _ in found] == ["Crimson"], "Cat boxes are left out"
    else:
        assert len(found) == len(sample.truth)
        width, height = 192, 144
        assert all(box[0] == 0.0 and abs(box[3] - height) < 1e-6 for _, box in found), "clamped to the image"
        assert all(0 <= box[2] <= width for _, box in found)


def test_a_failing_endpoint_fails_only_the_task_it_failed_and_says_why(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    """Task 1's image gets an HTTP 500 and task 2's an answer slower than VLM_TIMEOUT (the script knows them by
    their width); tasks 0 and 3 are answered."""
    reader = colour_reader(LABELS)

    def script(question: Question) -> Reply:
        width = question.image.shape[1]
        if width == 200:
            return Reply("upstream model crashed", status=500)
        return Reply(reader(question).text, delay=3.0 if width == 210 else 0.0)

    tasks = tasks_of(sample_images[:4])
    for task, width in ((tasks[1], 200), (tasks[2], 210)):
        task["data"]["image"] = widened(sample_images[int(task["id"])], width)
    with serve_vlm(script) as server, caplog.at_level(logging.INFO):
        vlm_env(monkeypatch, server, VLM_TIMEOUT="0.5", VLM_MAX_RETRIES="0")
        started = time.monotonic()
        results, _ = results_for(ZERO_SHOT_CONFIG, tasks)
        elapsed = time.monotonic() - started

    assert results[1] == [] and results[2] == [], "no prediction: Label Studio asks for these tasks again later"
    assert_found(results[0]["result"], sample_images[0])
    assert_found(results[3]["result"], sample_images[3])
    assert "Task 1: no prediction, the vision-language model failed" in caplog.text
    assert "answered HTTP 500" in caplog.text
    assert (
        f"Task 2: no prediction, the vision-language model failed: no answer from {server.base_url} within 0.5 s"
        in (caplog.text)
    )
    assert elapsed < 2.5, "the slow answer is cut off at VLM_TIMEOUT"
    assert API_KEY not in caplog.text


def widened(sample: SampleImage, width: int) -> str:
    """The sample as a PNG data URI, widened with grey to ``width`` pixels on the right."""
    import cv2

    pixels = cv2.imread(str(sample.path))
    pixels = cv2.copyMakeBorder(pixels, 0, 0, 0, width - pixels.shape[1], cv2.BORDER_CONSTANT, value=(128, 128, 128))
    return "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", pixels)[1].tobytes()).decode()


def test_asking_for_a_stage_without_an_endpoint_is_a_config_error_with_the_fix(backend_env: Path) -> None:
    with app_client() as client:
        answer = client.post("/setup", json={"project": PROJECT, "schema": REFINE_CONFIG})
    assert answer.status_code == 400
    assert (
        'vlm="refine"> asks for a vision-language model, but none is set: set VLM_BASE_URL and VLM_MODEL'
        in (answer.json["error"])
    )


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        (
            '<PolygonLabels name="outline" toName="image" vlm="zero-shot"><Label value="Crimson"/></PolygonLabels>',
            'zero-shot gives boxes, so it fills <RectangleLabels> only, e.g. <RectangleLabels name="outline"',
        ),
        (
            '<Choices name="kind" toName="image" vlm="refine"><Choice value="Crimson"/></Choices>',
            "refine relabels objects, so it fills <RectangleLabels>, <PolygonLabels> or <BrushLabels>",
        ),
        (
            '<RectangleLabels name="label" toName="image" vlm="maybe"><Label value="Crimson"/></RectangleLabels>',
            'vlm="maybe"; it must be one of zero-shot, refine, off',
        ),
    ],
)
def test_a_tag_that_cannot_take_its_stage_is_refused_with_xml_that_works(
    tag: str, expected: str, backend_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = f'<View><Image name="image" value="$image"/>{tag}</View>'
    with serve_vlm(colour_reader(LABELS)) as server:
        vlm_env(monkeypatch, server)
        with app_client() as client:
            answer = client.post("/setup", json={"project": PROJECT, "schema": config})
    assert answer.status_code == 400 and expected in answer.json["error"], answer.json


# --- Refine ---------------------------------------------------------------------------------------------------------


def test_refine_relabels_yolo_boxes_by_the_models_answer_for_each_crop(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = tasks_of(sample_images[:3])
    yolo_only, _ = results_for(REFINE_CONFIG.replace('vlm="refine"', 'vlm="off"'), tasks)
    with serve_vlm(colour_reader(LABELS)) as server:
        vlm_env(monkeypatch, server)
        refined, version = results_for(REFINE_CONFIG, tasks)

    assert {label for result in yolo_only for label, _ in labelled_boxes(result["result"])} == {"Crimson"}
    for before, after, sample in zip(yolo_only, refined, sample_images, strict=False):
        assert_found(after["result"], sample, min_iou=0.7)
        boxes_after = [value for _, box in labelled_boxes(after["result"]) for value in box]
        boxes_before = [value for _, box in labelled_boxes(before["result"]) for value in box]
        assert boxes_after == pytest.approx(boxes_before, abs=0.01), "YOLO's boxes, relabelled"
        for old, new in zip(before["result"], after["result"], strict=True):
            assert new["score"] == pytest.approx((old["score"] * 0.9) ** 0.5, abs=1e-4), "YOLO's and the model's"
    assert len(server.questions) == sum(len(result["result"]) for result in yolo_only), "one question per box"
    assert all("took for a red" in q.prompt or "took for a blue" in q.prompt for q in server.questions)
    assert version.endswith("+vlm-colour-reader")


def test_refine_drops_a_box_the_model_says_is_none_of_the_labels(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = colour_reader(LABELS)

    def no_blue(question: Question) -> Reply:
        answer = reader(question)
        return Reply('{"label": "none", "confidence": 0.8}') if "Navy" in answer.text else answer

    with serve_vlm(no_blue) as server:
        vlm_env(monkeypatch, server)
        [result], _ = results_for(REFINE_CONFIG, tasks_of(sample_images[:1]))
    assert [label for label, _ in labelled_boxes(result["result"])] == ["Crimson"]


@pytest.mark.parametrize("failure", ["HTTP 500", "timeout", "unreadable"])
def test_a_failed_crop_keeps_yolos_label_and_the_failure_is_logged(
    failure: str, backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    reply = {
        "HTTP 500": Reply("overloaded", status=500),
        "timeout": Reply('{"label": "Navy"}', delay=3.0),
        "unreadable": Reply("It is a navy box."),
    }[failure]
    with serve_vlm(lambda question: reply) as server, caplog.at_level(logging.DEBUG):
        vlm_env(monkeypatch, server, VLM_TIMEOUT="0.5", VLM_MAX_RETRIES="0")
        started = time.monotonic()
        [result], _ = results_for(REFINE_CONFIG, tasks_of(sample_images[:1]))
        elapsed = time.monotonic() - started

    assert [label for label, _ in labelled_boxes(result["result"])] == ["Crimson", "Crimson"], "YOLO's result"
    assert "Task 0: <RectangleLabels name='label'>: 2 of 2 boxes keep YOLO's labels" in caplog.text
    assert elapsed < 2.5, "crops are asked at once, each cut off at VLM_TIMEOUT"
    assert any(record.name.startswith("openai") for record in caplog.records), "the client's DEBUG lines were seen"
    assert API_KEY not in caplog.text, "not even at DEBUG, where the openai client logs its requests"
    assert {question.authorization for question in server.questions} == {f"Bearer {API_KEY}"}


def test_crops_are_asked_at_once_within_the_concurrency_limit(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = colour_reader(LABELS)
    with serve_vlm(lambda question: Reply(reader(question).text, delay=0.3)) as server:
        vlm_env(monkeypatch, server, VLM_CONCURRENCY="8")
        results_for(REFINE_CONFIG, tasks_of(sample_images[:1]))
        one_task = server.most_in_flight
    with serve_vlm(lambda question: Reply(reader(question).text, delay=0.3)) as server:
        vlm_env(monkeypatch, server, VLM_CONCURRENCY="3", INFERENCE_LANES="2")
        results, _ = results_for(REFINE_CONFIG, tasks_of(sample_images[1:6]))

    assert one_task == 2, "both crops of a task at once"
    assert server.most_in_flight == 3, "lanes together stay within VLM_CONCURRENCY"
    for result, sample in zip(results, sample_images[1:6], strict=True):
        assert_found(result["result"], sample, min_iou=0.7)


def test_a_task_predicted_again_asks_nothing_twice(
    backend_env: Path, sample_images: list[SampleImage], monkeypatch: pytest.MonkeyPatch
) -> None:
    with serve_vlm(colour_reader(LABELS)) as server:
        vlm_env(monkeypatch, server)
        first, _ = results_for(REFINE_CONFIG, tasks_of(sample_images[:2]))
        asked = len(server.questions)
        again, _ = results_for(REFINE_CONFIG, tasks_of(sample_images[:2]))
        monkeypatch.setenv("VLM_MODEL", "another-reader")
        other, version = results_for(REFINE_CONFIG, tasks_of(sample_images[:2]))
    assert again == first and asked == 4
    assert len(server.questions) == 8, "another model is asked afresh, not answered from the first one's cache"
    assert [q.model for q in server.questions[4:]] == ["another-reader"] * 4
    assert version.endswith("+vlm-another-reader") and [r["model_version"] for r in other] == [version] * 2
