"""A published version is served at once, without a restart, to its own project only.

The "trained" version here is the tiny model copied into the version store (training itself is tested end to end):
what matters is what the backend serves. A trained version's classes are the project's labels, so a label that
took no class of the base model (through a ``predicted_values`` that matches nothing) now takes its own class.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from conftest import SampleImage, app_client
from label_studio_yolo.versions import META_FILE, WEIGHTS_FILE, VersionStore

CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="red" predicted_values="no-such-class"/>
    <Label value="blue"/>
  </RectangleLabels>
</View>"""


@pytest.fixture
def store(backend_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VersionStore:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "versions"))
    return VersionStore(tmp_path / "versions")


@pytest.fixture
def client(store: VersionStore) -> Iterator[FlaskClient]:
    with app_client() as test_client:
        yield test_client


def labels_predicted(client: FlaskClient, project: str, sample: SampleImage) -> tuple[str, list[str]]:
    body = {"tasks": [{"id": 1, "data": {"image": sample.data_uri()}}], "project": project, "label_config": CONFIG}
    answer = client.post("/predict", json=body).json
    labels = sorted(r["value"]["rectanglelabels"][0] for r in answer["results"][0]["result"])
    return answer["model_version"], labels


def test_a_published_version_is_served_without_restart_to_its_project_only(
    client: FlaskClient, store: VersionStore, backend_env: Path, sample_images: list[SampleImage]
) -> None:
    sample = sample_images[0]
    base_version, labels = labels_predicted(client, "4.1700000000", sample)
    assert labels == ["blue"], "the base model's red class is claimed by no label"

    with store.new_version(4, "project4-v001-abcdef12") as folder:
        shutil.copy2(backend_env / "boxes.pt", folder / WEIGHTS_FILE)
        (folder / META_FILE).write_text('{"annotations": 12}')
    store.publish(4, "project4-v001-abcdef12")

    setup = client.post("/setup", json={"project": "4.1700000000", "schema": CONFIG}).json
    assert setup["model_version"] == "project4-v001-abcdef12"
    assert labels_predicted(client, "4.1700000000", sample) == ("project4-v001-abcdef12", ["blue", "red"])
    assert labels_predicted(client, "5.1700000000", sample) == (base_version, ["blue"]), "other projects unchanged"

    status = client.get("/training/status", query_string={"project": 4}).json["4"]
    assert status["current"] == "project4-v001-abcdef12"
    assert [v["annotations"] for v in status["versions"]] == [12]
