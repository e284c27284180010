"""Fixtures shared by ``test_api.py`` and ``tests/``: a tiny YOLO model trained here, images with known boxes.

Nothing downloads weights: the model is trained on synthetic images on first use (about two minutes on two
cores) and cached in ``.cache/models`` keyed by the recipe, so later runs start at once.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(__file__).parent / ".cache" / "ultralytics"))

from tests.support.synthetic import GroundTruthBox, draw_image, train_tiny_model

PROJECT_ROOT = Path(__file__).parent
MODEL_CACHE = PROJECT_ROOT / ".cache" / "models"
WEIGHTS_NAME = "boxes.pt"

BOXES_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image" model_score_threshold="0.4">
    <Label value="Red box" predicted_values="red"/>
    <Label value="Blue"/>
  </RectangleLabels>
</View>"""
"""A project config: 'Red box' takes class red through predicted_values, 'Blue' takes class blue by its name."""


@dataclass(frozen=True)
class SampleImage:
    """A synthetic image on disk with its ground-truth boxes."""

    path: Path
    truth: list[GroundTruthBox]

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.path.read_bytes()).decode()

    def annotation_result(self, labels: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The true boxes as a Label Studio annotation's ``result`` (``labels`` renames classes to labels)."""
        with Image.open(self.path) as image:
            width, height = image.size
        return [
            {
                "from_name": "label",
                "to_name": "image",
                "type": "rectanglelabels",
                "original_width": width,
                "original_height": height,
                "value": {
                    "x": box.x0 / width * 100,
                    "y": box.y0 / height * 100,
                    "width": (box.x1 - box.x0) / width * 100,
                    "height": (box.y1 - box.y0) / height * 100,
                    "rotation": 0,
                    "rectanglelabels": [(labels or {}).get(box.label, box.label)],
                },
            }
            for box in self.truth
        ]


@contextmanager
def app_client() -> Iterator[FlaskClient]:
    """A Flask test client of the backend app, built from the environment as it is now."""
    from label_studio_yolo.serving.app import create_app
    from model import YOLOBackend

    app = create_app(YOLOBackend)
    app.testing = True
    with app.test_client() as client:
        yield client


@pytest.fixture
def client(backend_env: Path) -> Iterator[FlaskClient]:
    """The backend app serving the tiny model (no Redis: training would run in a local process)."""
    with app_client() as test_client:
        yield test_client


@pytest.fixture(scope="session", autouse=True)
def background_exports_finish() -> Iterator[None]:
    """Let OpenVINO exports that a server started in the background finish while pytest still captures their log."""
    yield
    for thread in threading.enumerate():
        if thread.name == "openvino-export":
            thread.join(300)


@pytest.fixture(scope="session")
def tiny_weights() -> Path:
    """A yolo11n detector of red and blue boxes, trained on synthetic images (cached across runs)."""
    return train_tiny_model(MODEL_CACHE)


@pytest.fixture(scope="session")
def model_root(tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODEL_ROOT holding the tiny model as ``boxes.pt``."""
    root = tmp_path_factory.mktemp("model-root")
    shutil.copy2(tiny_weights, root / WEIGHTS_NAME)
    return root


TASK_MODELS: dict[str, dict[str, object]] = {
    "boxes-seg.pt": {"epochs": 80, "task": "segment"},
    "colours-cls.pt": {"epochs": 15, "task": "classify"},
    "boxes-pose.pt": {"epochs": 60, "task": "pose"},
    "boxes-obb.pt": {"epochs": 100, "task": "obb"},
}
"""The other tiny models in MODEL_ROOT, by file name: segmentation (box outlines), classification (an image's
colour), pose (the middles of each box's top and bottom edges) and OBB (rotated rectangles)."""


@pytest.fixture(scope="session")
def task_models(model_root: Path) -> Path:
    """MODEL_ROOT with the segmentation, classification, pose and OBB models of :data:`TASK_MODELS` added."""
    for name, recipe in TASK_MODELS.items():
        shutil.copy2(train_tiny_model(MODEL_CACHE, **recipe), model_root / name)  # type: ignore[arg-type]
    return model_root


@pytest.fixture
def backend_env(model_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Environment of a backend serving ``boxes.pt`` from ``model_root``, with no trained versions yet."""
    monkeypatch.setenv("MODEL_ROOT", str(model_root))
    monkeypatch.setenv("MODEL_PATH", WEIGHTS_NAME)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "model-versions"))
    monkeypatch.setenv("TORCH_THREADS", "2")
    monkeypatch.setenv("MEDIA_ALLOWED_HOSTS", "public,127.0.0.1")  # the tests' image servers stand in for public hosts
    for name in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "MODEL_SCORE_THRESHOLD", "LOCAL_FILES_DOCUMENT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    return model_root


def draw_samples(folder: Path, prefix: str, count: int, seed: int) -> list[SampleImage]:
    """``count`` images named ``<prefix><n>.png``, each with one red and one blue box in random places."""
    rng = random.Random(seed)
    samples = []
    for index in range(count):
        path = folder / f"{prefix}{index:02d}.png"
        samples.append(SampleImage(path, draw_image(path, rng, labels=["red", "blue"])))
    return samples


@pytest.fixture(scope="session")
def sample_images(tmp_path_factory: pytest.TempPathFactory) -> list[SampleImage]:
    """Six unseen images: each has one red and one blue box, in random places."""
    return draw_samples(tmp_path_factory.mktemp("samples"), "sample", 6, seed=1234)
