"""serving/backends.py: one model per project, bounded in number, and each built from one parse of its config."""

from __future__ import annotations

from pathlib import Path

import pytest
from label_studio_sdk.label_interface.interface import LabelInterface
from label_studio_tools.core import label_config as label_studio_tools_config

import label_studio_yolo.serving.backends
from conftest import BOXES_CONFIG, app_client


def test_project_models_are_bounded_and_share_one_image_loader(
    backend_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(label_studio_yolo.serving.backends, "MAX_CACHED_PROJECTS", 8)  # the same rule, fewer builds
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens: the tasks fail, fast
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "key")
    task = {"id": 1, "data": {"image": "/data/upload/1/a.png"}}
    with app_client() as client:
        models = client.application.extensions["label_studio_yolo"].backends
        for number in range(1, 15):
            body = {"project": f"{number}.1700000000", "label_config": BOXES_CONFIG, "tasks": [task]}
            assert client.post("/predict", json=body).json["results"] == [[]]

        assert len(models) == 8
        loaders = {id(models.get(f"{n}.1700000000", BOXES_CONFIG).predictor.loader) for n in range(8, 15)}
        assert len(loaders) == 1, "projects of one Label Studio and key share one loader (its session and client)"
        first = models.get("1.1700000000", BOXES_CONFIG)  # dropped long ago: built again, and it still works
        assert first.model_version.startswith("boxes-")


def test_a_new_project_parses_its_labelling_config_once(backend_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """label-studio-ml's own parse is skipped; its parsed_label_config is still there for whoever asks."""
    parses: list[str] = []
    sdk_init, tools_parse = LabelInterface.__init__, label_studio_tools_config.parse_config

    def counted_sdk(self: LabelInterface, config: str, *args: object, **kwargs: object) -> None:
        parses.append("label-studio-sdk")
        sdk_init(self, config, *args, **kwargs)

    def counted_tools(config: str) -> dict[str, object]:
        parses.append("label-studio-tools")
        return tools_parse(config)

    monkeypatch.setattr(LabelInterface, "__init__", counted_sdk)
    monkeypatch.setattr(label_studio_tools_config, "parse_config", counted_tools)
    with app_client() as client:
        answer = client.post("/setup", json={"project": "5.1700000000", "schema": BOXES_CONFIG})
        model = client.application.extensions["label_studio_yolo"].backends.get("5.1700000000", BOXES_CONFIG)

        assert answer.status_code == 200
        assert parses == ["label-studio-sdk"]
        assert model.parsed_label_config == tools_parse(BOXES_CONFIG)
        assert parses == ["label-studio-sdk", "label-studio-tools"]
