"""Bad input, end to end: the backend under gunicorn, real HTTP, images from real local servers that misbehave.

Every bad task is sent between two good ones. Label Studio must get an answer it handles: HTTP 200 with one entry
per task, the good tasks predicted, ``[]`` (no prediction, asked again next time) for the bad one, and the reason,
with the task id, in the backend's log. Requests Label Studio could never act on get a 400 naming the problem. After
every case the same worker process still answers.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import requests
from PIL import Image

from conftest import BOXES_CONFIG, WEIGHTS_NAME, SampleImage
from label_studio_yolo.prediction.tasks import TASK_LINES_PER_BATCH
from test_api import assert_matches_truth
from tests.e2e.conftest import BackendServer, backend_server
from tests.support.processes import free_port
from tests.support.scripted_server import Answer, ScriptedServer, serve_script

API_KEY = "legacy-key"
MEDIA_TIMEOUT = 1
MEDIA_MAX_BYTES = 200_000
LABELS = {"red": "Red box", "blue": "Blue"}
PROJECT = "21.1700000000"


@dataclass(frozen=True)
class Media:
    """The servers images come from: ``label_studio`` (LABEL_STUDIO_URL) and ``other`` (a public host)."""

    label_studio: ScriptedServer
    other: ScriptedServer
    samples: list[SampleImage]

    def public(self, name: str) -> str:
        return f"{self.other.url}/public/{name}"


@dataclass(frozen=True)
class Backend:
    server: BackendServer
    media: Media

    def post(self, route: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.server.url + route, timeout=60, **kwargs)

    def predict(self, tasks: list[object], config: str = BOXES_CONFIG) -> requests.Response:
        return self.post("/predict", json={"tasks": tasks, "project": PROJECT, "label_config": config, "params": {}})

    def log_size(self) -> int:
        return self.server.log.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.server.log.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")


def encoded(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A small, well-formed PNG whose header claims ``width`` x ``height`` pixels (its data is a few bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def sixteen_bit_png(sample: SampleImage) -> bytes:
    pixels = cv2.imread(str(sample.path)).astype(np.uint16) * 257
    return bytes(cv2.imencode(".png", pixels)[1])


def animated_gif(first: SampleImage, second: SampleImage) -> bytes:
    frames = [Image.open(first.path).convert("RGB"), Image.open(second.path).convert("RGB")]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


def public_answers(samples: list[SampleImage]) -> dict[str, Answer]:
    """What the public host serves, by file name under ``/public/``."""
    png, jpeg = samples[1].path.read_bytes(), encoded(Image.open(samples[1].path), "JPEG")
    return {
        "sample1.png": Answer(body=png),
        "sample2.png": Answer(body=samples[2].path.read_bytes()),
        "401.png": Answer(401, b'{"detail": "Authentication credentials were not provided."}'),
        "403.png": Answer(403, b"forbidden"),
        "500.png": Answer(500, b"Internal Server Error"),
        "login.png": Answer(body=b"<html><head><title>Login</title></head><body>Sign in</body></html>"),
        "silent.png": Answer(silent=True),
        "trickle.png": Answer(body=png, byte_delay=0.05),
        "declares-10GB.png": Answer(body=png, declared_length=10_000_000_000),
        "too-big.png": Answer(body=b"\x00" * (MEDIA_MAX_BYTES + 100_000), declared_length=-1),
        "cut-short.png": Answer(body=png[:100], declared_length=len(png)),
        "empty.png": Answer(body=b""),
        "half.png": Answer(body=png[: len(png) // 2]),
        "half.jpg": Answer(body=jpeg[: len(jpeg) // 2]),
        "garbage.png": Answer(body=b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
        "claims-60000x60000.png": Answer(body=png_claiming(60000, 60000)),
        "bomb.png": Answer(body=encoded(Image.new("1", (14000, 14000)), "PNG")),
        "loop.png": Answer(302, headers=(("Location", "/public/loop.png"),)),
        "to-ftp.png": Answer(302, headers=(("Location", "ftp://127.0.0.1/sample1.png"),)),
        "animated.gif": Answer(body=animated_gif(samples[1], samples[2])),
        "16-bit.png": Answer(body=sixteen_bit_png(samples[1])),
        "cmyk.jpg": Answer(body=encoded(Image.open(samples[1].path).convert("CMYK"), "JPEG", quality=95)),
        "60000x1.png": Answer(body=encoded(Image.new("RGB", (60000, 1), (220, 30, 30)), "PNG")),
    }


@pytest.fixture(scope="module")
def media(sample_images: list[SampleImage]) -> Iterator[Media]:
    with serve_script() as label_studio, serve_script() as other:
        found = Media(label_studio, other, sample_images)
        label_studio.add("/data/upload/1/sample0.png", Answer(body=sample_images[0].path.read_bytes()))
        label_studio.add("/data/upload/1/expired.png", Answer(401, b'{"detail": "Invalid token."}'))
        label_studio.add("/data/upload/1/moved.png", Answer(302, headers=(("Location", found.public("sample2.png")),)))
        for name, answer in public_answers(sample_images).items():
            other.add(f"/public/{name}", answer)
        yield found


def local_files(root: Path) -> Path:
    """LOCAL_FILES_DOCUMENT_ROOT with a link to a file outside it (``secret.png`` lies beside the root)."""
    (root / "docs").mkdir()
    (root / "secret.png").write_bytes(encoded(Image.new("RGB", (8, 8)), "PNG"))
    (root / "docs" / "link.png").symlink_to(root / "secret.png")
    return root / "docs"


def model_root_with_escape(root: Path, weights: Path) -> Path:
    """MODEL_ROOT holding the tiny model, and ``escape.pt``: a link to a copy of it outside MODEL_ROOT."""
    (root / "models").mkdir()
    shutil.copy2(weights, root / "models" / WEIGHTS_NAME)
    shutil.copy2(weights, root / "outside.pt")
    (root / "models" / "escape.pt").symlink_to(root / "outside.pt")
    return root / "models"


@pytest.fixture(scope="module")
def backend(media: Media, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """One gunicorn backend for the whole file, with short media limits (1 s, 200 kB) to keep the cases fast."""
    work = tmp_path_factory.mktemp("bad-input")
    settings = {
        "LABEL_STUDIO_URL": media.label_studio.url,
        "LABEL_STUDIO_API_KEY": API_KEY,
        "LOCAL_FILES_DOCUMENT_ROOT": str(local_files(work)),
        "MEDIA_TIMEOUT": str(MEDIA_TIMEOUT),
        "MEDIA_MAX_BYTES": str(MEDIA_MAX_BYTES),
        "INFERENCE_RUNTIME": "pytorch",
        "TORCH_THREADS": "2",
        "INFERENCE_LANES": "2",
    }
    with backend_server(model_root_with_escape(work, tiny_weights), work, **settings) as server:
        backend = Backend(server, media)
        # The first download of a fresh process also pays for its HTTP machinery; on a loaded 2-core machine that
        # once took longer than the cases' 1 s MEDIA_TIMEOUT, failing the first good task. Pay it here.
        backend.predict([{"id": 1, "data": {"image": GOOD_BEFORE}}])
        yield backend


def image_at(url_of: Callable[[Media], object]) -> Callable[[Media, int], object]:
    """A task whose ``image`` is the value ``url_of`` gives."""
    return lambda media, task_id: {"id": task_id, "data": {"image": url_of(media)}}


def task(shape: Callable[[int], object]) -> Callable[[Media, int], object]:
    """A task of the given shape (no image server involved)."""
    return lambda _media, task_id: shape(task_id)


def local(path: str) -> Callable[[Media], object]:
    return lambda _media: f"/data/local-files/?d={path}"


def public(name: str) -> Callable[[Media], object]:
    return lambda media: media.public(name)


GOOD_BEFORE = "/data/upload/1/sample0.png"
"""A Label Studio upload (fetched with the API key) of sample 0, predicted before each bad task."""

REFUSED: dict[str, tuple[Callable[[Media, int], object], str]] = {
    # The image server answers with an error.
    "http-404": (image_at(public("missing.png")), "HTTP 404 (Not Found)"),
    "http-500": (image_at(public("500.png")), "HTTP 500 (Internal Server Error)"),
    "http-401-other-host": (image_at(public("401.png")), "HTTP 401 (Unauthorized); credentials are sent only to"),
    "http-403-other-host": (image_at(public("403.png")), "HTTP 403 (Forbidden)"),
    "http-401-label-studio": (image_at(lambda m: "/data/upload/1/expired.png"), "Label Studio refused the credentials"),
    "upload-missing": (image_at(lambda m: "/data/upload/1/missing.png"), "HTTP 404 (Not Found)"),
    # The image server is slow, absent, or sends the wrong amount.
    "never-answers": (image_at(public("silent.png")), f"timed out after {MEDIA_TIMEOUT} s (MEDIA_TIMEOUT)"),
    "trickles-forever": (image_at(public("trickle.png")), f"timed out after {MEDIA_TIMEOUT} s (MEDIA_TIMEOUT)"),
    "connection-refused": (image_at(lambda m: f"http://127.0.0.1:{free_port()}/a.png"), "Connection refused"),
    "declares-10GB": (image_at(public("declares-10GB.png")), "is 10000000000 bytes, larger than MEDIA_MAX_BYTES"),
    "body-over-max-bytes": (image_at(public("too-big.png")), "larger than MEDIA_MAX_BYTES"),
    "body-cut-short": (image_at(public("cut-short.png")), "IncompleteRead"),
    # Redirects.
    "redirect-loop": (image_at(public("loop.png")), "more than 5 redirects"),
    "redirect-to-ftp": (image_at(public("to-ftp.png")), "it redirects to ftp://127.0.0.1/sample1.png, not http(s)"),
    # Content that is not an image Pillow and OpenCV can decode.
    "html-page": (image_at(public("login.png")), "not a readable image: 66 bytes starting b'<html><head>"),
    "zero-bytes": (image_at(public("empty.png")), "not a readable image: it is empty (0 bytes)"),
    "truncated-png": (image_at(public("half.png")), "not a readable image"),
    "truncated-jpeg": (image_at(public("half.jpg")), "not a readable image"),
    "broken-png-bytes": (image_at(public("garbage.png")), "not a readable image"),
    "png-claiming-60000x60000": (image_at(public("claims-60000x60000.png")), "refused as a decompression bomb"),
    "decompression-bomb": (image_at(public("bomb.png")), "refused as a decompression bomb"),
    "data-uri-of-text": (image_at(lambda m: "data:text/plain,hello%20world"), "not a readable image"),
    "data-uri-bad-base64": (image_at(lambda m: "data:image/png;base64,!!!notbase64"), "Malformed data: URI"),
    # Locations the backend does not read.
    "ftp-url": (image_at(lambda m: "ftp://127.0.0.1/a.png"), "Unsupported image location ftp://"),
    "file-url": (image_at(lambda m: "file:///etc/passwd"), "Unsupported image location file:///etc/passwd:"),
    "s3-uri-no-storage": (image_at(lambda m: "s3://bucket/a.png"), "Label Studio has no cloud storage that holds s3:"),
    "relative-path": (image_at(lambda m: "images/a.png"), "Unsupported image location images/a.png:"),
    "very-long-url": (image_at(lambda m: m.public("x" * 60_000 + ".png")), "HTTP 404 (Not Found)"),
    "local-file-dotdot": (image_at(local("../secret.png")), "outside LOCAL_FILES_DOCUMENT_ROOT"),
    "local-file-encoded-dotdot": (image_at(local("..%2Fsecret.png")), "outside LOCAL_FILES_DOCUMENT_ROOT"),
    "local-file-link-out": (image_at(local("link.png")), "outside LOCAL_FILES_DOCUMENT_ROOT"),
    "local-file-url-dotdot": (
        image_at(lambda m: f"{m.label_studio.url}/data/local-files/?d=../secret.png"),
        "outside LOCAL_FILES_DOCUMENT_ROOT",
    ),
    "local-file-missing": (image_at(local("nope.png")), "does not exist"),
    "local-file-nul-byte": (image_at(local("a%00b.png")), "could not be read (embedded null byte)"),
    # Task data of the wrong shape.
    "value-number": (image_at(lambda m: 42), "Task data value 42 is not an image URL or path"),
    "value-list": (image_at(lambda m: [GOOD_BEFORE]), "is not an image URL or path"),
    "value-object": (image_at(lambda m: {"url": GOOD_BEFORE}), "is not an image URL or path"),
    "value-null": (image_at(lambda m: None), "Task data value None is not an image URL or path"),
    "value-empty": (image_at(lambda m: "  "), "is not an image URL or path"),
    "data-without-image-key": (task(lambda i: {"id": i, "data": {"text": "x"}}), "no 'image' key"),
    "data-not-an-object": (task(lambda i: {"id": i, "data": GOOD_BEFORE}), "'data' is a JSON string"),
    "task-without-data": (task(lambda i: {"id": i}), "'data' is missing"),
}
"""Tasks that get no prediction, and what the log says about each."""

NO_ID = {
    "task-is-a-string": ("just a string", "the task is a JSON string"),
    "task-is-null": (None, "the task is a JSON null"),
    "task-is-a-list": ([GOOD_BEFORE], "the task is a JSON array"),
}
"""Tasks that are not objects (so have no id): the log names them by their place in the batch."""


def good_tasks(media: Media, bad_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tasks around a bad one: a Label Studio upload of sample 0 and a public URL of sample 1."""
    before = {"id": bad_id - 1, "data": {"image": GOOD_BEFORE}}
    after = {"id": bad_id + 1, "data": {"image": media.public("sample1.png")}}
    return before, after


def predict_around(backend: Backend, bad_task: object, bad_id: int) -> tuple[list[Any], str]:
    """Predict ``[good, bad, good]``; check Label Studio's view of the answer; return the results and the log."""
    before, after = good_tasks(backend.media, bad_id)
    offset = backend.log_size()
    response = backend.predict([before, bad_task, after])
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3
    assert_matches_truth(results[0]["result"], backend.media.samples[0], LABELS)
    assert_matches_truth(results[2]["result"], backend.media.samples[1], LABELS)
    log = backend.log_since(offset)
    assert f"Task {before['id']}: no prediction" not in log and f"Task {after['id']}: no prediction" not in log
    return results, log


def assert_still_serving(backend: Backend, log: str) -> None:
    """The failure was expected (no traceback) and the worker that served it is the one that started."""
    assert "Traceback" not in log, log
    assert requests.get(f"{backend.server.url}/health", timeout=10).json()["status"] == "UP"
    assert backend.server.log.read_text(errors="replace").count("Booting worker") == 1


def reason_line(log: str, name: object) -> str:
    """The log line giving ``name``'s reason for having no prediction."""
    lines = [line for line in log.splitlines() if f"Task {name}: no prediction" in line]
    assert len(lines) == 1, log
    return lines[0]


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_task_gets_no_prediction_and_a_logged_reason(backend: Backend, case: str) -> None:
    make, reason = REFUSED[case]
    bad_id = 1000 + 10 * list(REFUSED).index(case)

    results, log = predict_around(backend, make(backend.media, bad_id), bad_id)

    assert results[1] == []
    line = reason_line(log, bad_id)
    assert reason in line, line
    assert len(line) < 1000, "a reason fits on a screen (long URLs are cut)"
    assert_still_serving(backend, log)


@pytest.mark.parametrize("case", list(NO_ID))
def test_a_task_that_is_not_an_object_is_named_by_its_place(backend: Backend, case: str) -> None:
    bad_task, reason = NO_ID[case]

    results, log = predict_around(backend, bad_task, 2000 + 10 * list(NO_ID).index(case))

    assert results[1] == []
    assert reason in reason_line(log, "#1 of the batch (it has no id)")
    assert_still_serving(backend, log)


ACCEPTED: dict[str, tuple[Callable[[Media], object], int]] = {
    "animated-gif": (public("animated.gif"), 1),
    "16-bit-png": (public("16-bit.png"), 1),
    "cmyk-jpeg": (public("cmyk.jpg"), 1),
    "redirect-to-other-host": (lambda m: "/data/upload/1/moved.png", 2),
}
"""Unusual but valid images, and the sample each shows (an animated GIF: its first frame)."""


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_an_unusual_image_is_predicted(backend: Backend, case: str) -> None:
    url_of, sample = ACCEPTED[case]
    bad_id = 3000 + 10 * list(ACCEPTED).index(case)

    results, log = predict_around(backend, image_at(url_of)(backend.media, bad_id), bad_id)

    assert_matches_truth(results[1]["result"], backend.media.samples[sample], LABELS)
    assert_still_serving(backend, log)


def test_a_redirect_to_another_host_does_not_carry_the_api_key(backend: Backend) -> None:
    media = backend.media
    result = backend.predict([{"id": 1, "data": {"image": "/data/upload/1/moved.png"}}]).json()["results"][0]

    assert_matches_truth(result["result"], media.samples[2], LABELS)
    assert media.label_studio.auth_sent_to("/data/upload/1/moved.png")[-1] == f"Token {API_KEY}"
    assert set(media.other.auth_sent_to("/public/sample2.png")) == {None}


def test_an_image_of_60000_by_1_pixels_is_predicted_without_regions(backend: Backend) -> None:
    results, log = predict_around(backend, {"id": 3901, "data": {"image": backend.media.public("60000x1.png")}}, 3901)

    assert results[1]["result"] == [] and results[1]["model_version"].startswith("boxes-")
    assert_still_serving(backend, log)


def test_a_batch_of_only_bad_tasks_answers_with_an_empty_entry_each(backend: Backend) -> None:
    tasks = [make(backend.media, 4000 + n) for n, (make, _reason) in enumerate(REFUSED.values())]
    offset = backend.log_size()

    response = backend.predict(tasks)

    assert response.status_code == 200
    assert response.json()["results"] == [[]] * len(tasks)
    log = backend.log_since(offset)
    lines = [line for line in log.splitlines() if re.search(r"Task 40\d\d: no prediction", line)]
    assert len(lines) == TASK_LINES_PER_BATCH < len(tasks), "a line each for the first tasks only"
    summary = f"Batch of {len(tasks)} tasks: media not loaded: {len(tasks)}; {len(tasks) - TASK_LINES_PER_BATCH} not"
    assert summary in log, log
    assert_still_serving(backend, log)


def setup_body(model_path: str) -> dict[str, Any]:
    config = BOXES_CONFIG.replace('model_score_threshold="0.4"', f'model_path="{model_path}"')
    return {"project": "22.1", "schema": config}


def predict_body(**fields: Any) -> dict[str, Any]:
    """A /predict body of one good task, with ``fields`` replaced."""
    body = {"tasks": [{"id": 1, "data": {"image": GOOD_BEFORE}}], "project": PROJECT, "label_config": BOXES_CONFIG}
    return {**body, **fields}


def nested_json(depth: int) -> dict[str, Any]:
    """A request whose ``tasks`` nests lists ``depth`` deep (json.loads recurses once per level)."""
    body = '{"project": "21.1", "tasks": ' + "[" * depth + "]" * depth + "}"
    return {"data": body, "headers": {"Content-Type": "application/json"}}


def event_body(project: object) -> dict[str, Any]:
    return {"json": {"action": "ANNOTATION_CREATED", "project": project, "annotation": {"id": 1}}}


NO_CONTROL = '<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>'

REFUSED_REQUESTS: dict[str, tuple[str, dict[str, Any], int, str]] = {
    "malformed-json": (
        "/predict",
        {"data": '{"tasks": [', "headers": {"Content-Type": "application/json"}},
        400,
        "the body is not valid JSON",
    ),
    "not-json-content-type": (
        "/predict",
        {"data": json.dumps(predict_body())},
        400,
        "expects Content-Type application/json, got none",
    ),
    "body-is-a-list": ("/predict", {"json": [predict_body()]}, 400, "got a JSON array"),
    "body-is-a-string": ("/predict", {"json": "tasks"}, 400, "got a JSON string"),
    "body-is-null": (
        "/predict",
        {"data": "null", "headers": {"Content-Type": "application/json"}},
        400,
        "got a JSON null",
    ),
    "tasks-missing": (
        "/predict",
        {"json": {"project": PROJECT}},
        400,
        "expects 'tasks' to be a list of tasks; it is missing",
    ),
    "tasks-not-a-list": ("/predict", {"json": predict_body(tasks={"id": 1})}, 400, "it is a JSON object"),
    "no-config-no-setup": (
        "/predict",
        {"json": predict_body(project="404.1", label_config=None)},
        400,
        "Project 404.1: /predict has no 'label_config' and /setup was not called",
    ),
    "config-not-a-string": (
        "/predict",
        {"json": predict_body(label_config=42)},
        400,
        "'label_config' must be the labelling config (a string)",
    ),
    "config-not-xml": (
        "/predict",
        {"json": predict_body(label_config="<View><Image")},
        400,
        "The labelling config could not be parsed",
    ),
    "config-nothing-to-fill": (
        "/predict",
        {"json": predict_body(label_config=NO_CONTROL)},
        400,
        "but the labelling config has <Choices name='c'>",
    ),
    "setup-not-json": ("/setup", {"data": "schema=<View/>"}, 400, "expects Content-Type application/json"),
    "setup-without-schema": (
        "/setup",
        {"json": {"project": "22.1"}},
        400,
        "expects 'schema' to be the labelling config",
    ),
    "setup-config-not-xml": ("/setup", {"json": {"project": "22.1", "schema": "hello"}}, 400, "could not be parsed"),
    "model-path-dotdot": (
        "/setup",
        {"json": setup_body("../outside.pt")},
        400,
        'model_path="../outside.pt", which points outside MODEL_ROOT',
    ),
    "model-path-absolute": (
        "/setup",
        {"json": setup_body("/etc/passwd")},
        400,
        'model_path="/etc/passwd", which points outside MODEL_ROOT',
    ),
    "model-path-link-out": (
        "/setup",
        {"json": setup_body("escape.pt")},
        400,
        '<RectangleLabels name="label"> has model_path="escape.pt", which is not a YOLO weight file in MODEL_ROOT',
    ),
    "model-path-too-long": ("/setup", {"json": setup_body("x" * 300 + ".pt")}, 400, "of 303 characters"),
    "model-path-longer-than-a-file-name": (
        "/setup",
        {"json": setup_body("x" * 252 + ".pt")},
        400,
        f'has model_path="{"x" * 40}',
    ),
    "model-path-missing-official-name": (
        "/setup",
        {"json": setup_body("x/deeper/yolo11x.pt")},
        400,
        'has model_path="x/deeper/yolo11x.pt", which is not a YOLO weight file in MODEL_ROOT (nothing is downloaded',
    ),
    "deeply-nested-predict": ("/predict", nested_json(200_000), 400, "/predict: the JSON body nests deeper than 100"),
    "nested-past-the-limit": ("/predict", nested_json(150), 400, "/predict: the JSON body nests deeper than 100"),
    "deeply-nested-setup": ("/setup", nested_json(200_000), 400, "/setup: the JSON body nests deeper than 100"),
    "deeply-nested-webhook": ("/webhook", nested_json(200_000), 400, "/webhook: the JSON body nests deeper than 100"),
    "project-negative": ("/webhook", event_body(-4), 400, "-4 is not a project id"),
    "project-float": ("/webhook", event_body(1.9), 400, "1.9 is not a project id"),
    "project-not-ascii-digits": ("/webhook", event_body("٣.1700000000"), 400, "is not a project id"),
    "project-negative-string": ("/webhook", event_body("-4.1700000000"), 400, "is not a project id"),
    "project-boolean": ("/webhook", event_body(True), 400, "True is not a project id"),
    "training-project-negative": ("/train", {"json": {"project": "-4"}}, 400, "-4 is not a project id"),
    "unknown-route": ("/no-such-route", {"json": {}}, 404, "POST /no-such-route: Not Found"),
    "wrong-method": ("/health", {"json": {}}, 405, "POST /health: Method Not Allowed"),
}
"""Requests Label Studio cannot be answered for, the status (500: the server's own files are wrong) and the error."""


@pytest.mark.parametrize("project", [3, "3", "3.1700000000", {"id": 3, "title": "Cats"}])
def test_label_studio_s_project_ids_are_taken_for_training(backend: Backend, project: object) -> None:
    response = backend.post("/webhook", json=event_body(project)["json"])

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "waiting", "project": 3, "new_annotations": response.json()["new_annotations"]}


@pytest.mark.parametrize("case", list(REFUSED_REQUESTS))
def test_a_bad_request_gets_an_error_naming_the_problem(backend: Backend, case: str) -> None:
    route, request, status, message = REFUSED_REQUESTS[case]
    offset = backend.log_size()

    response = backend.post(route, **request)

    assert response.status_code == status, response.text
    assert response.json()["status"] == "error"
    assert message in response.json()["error"]
    model_root = Path(backend.server.env["MODEL_ROOT"])
    assert str(model_root.parent) not in response.text, "no path of the server's disk in an answer"
    assert sorted(path.name for path in model_root.iterdir()) == sorted(["escape.pt", WEIGHTS_NAME]), "nothing written"
    log = backend.log_since(offset)
    assert message in log, "the error is logged too"
    assert_still_serving(backend, log)


@pytest.mark.parametrize(
    "body",
    [predict_body(tasks=[]), predict_body(project="999.1"), predict_body(project={"id": 5}), predict_body(params=None)],
    ids=["empty-task-list", "unknown-project", "project-as-object", "params-null"],
)
def test_an_odd_but_answerable_request_is_predicted(backend: Backend, body: dict[str, Any]) -> None:
    offset = backend.log_size()

    response = backend.post("/predict", json=body)

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == len(body["tasks"])
    for entry in results:
        assert_matches_truth(entry["result"], backend.media.samples[0], LABELS)
    assert_still_serving(backend, backend.log_since(offset))
