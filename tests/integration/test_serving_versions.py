"""A published or pinned version is served at once, without a restart, to its own project only; ``/versions``
answers Label Studio's bare ``GET`` and a person's questions about one project.

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


def store_version(store: VersionStore, weights: Path, project: int, name: str) -> None:
    with store.new_version(project, name) as folder:
        shutil.copy2(weights, folder / WEIGHTS_FILE)
        (folder / META_FILE).write_text("{}")


@pytest.fixture
def two_versions(store: VersionStore, backend_env: Path, monkeypatch: pytest.MonkeyPatch) -> VersionStore:
    """Project 4 with two versions, the newer published; project 6 with one. PyTorch: no OpenVINO export each."""
    monkeypatch.setenv("INFERENCE_RUNTIME", "pytorch")
    for project, name in ((4, "project4-v001-aaaa1111"), (4, "project4-v002-bbbb2222"), (6, "project6-v001-cccc3333")):
        store_version(store, backend_env / "boxes.pt", project, name)
        store.publish(project, name)
    return store


def test_label_studios_bare_get_lists_every_projects_versions(two_versions: VersionStore, client: FlaskClient) -> None:
    """Label Studio 1.23's ``GET /api/ml/<id>/versions`` calls ``GET /versions`` with no body and no query."""
    answer = client.get("/versions")
    assert answer.status_code == 200, answer.json
    assert answer.json == {
        "versions": ["project4-v001-aaaa1111", "project4-v002-bbbb2222", "project6-v001-cccc3333"],
        "current": {"4": "project4-v002-bbbb2222", "6": "project6-v001-cccc3333"},
        "pinned": {"4": None, "6": None},
    }


@pytest.mark.parametrize("project", ["4.1700000000", 4, {"id": 4, "title": "Project 4"}])
def test_versions_of_one_project_by_query_or_body(
    two_versions: VersionStore, client: FlaskClient, project: object
) -> None:
    expected = {
        "versions": ["project4-v001-aaaa1111", "project4-v002-bbbb2222"],
        "current": "project4-v002-bbbb2222",
        "pinned": None,
    }
    assert client.post("/versions", json={"project": project}).json == expected
    if not isinstance(project, dict):
        assert client.get("/versions", query_string={"project": project}).json == expected


def predicted(client: FlaskClient, sample: SampleImage, project: str = "4.1700000000") -> tuple[str, list[str]]:
    return labels_predicted(client, project, sample)


def test_a_pinned_older_version_is_served_and_unpin_returns_to_the_newest_published(
    two_versions: VersionStore, client: FlaskClient, sample_images: list[SampleImage]
) -> None:
    sample = sample_images[0]
    assert predicted(client, sample) == ("project4-v002-bbbb2222", ["blue", "red"])

    answer = client.post("/versions/pin", json={"project": "4.1700000000", "version": "project4-v001-aaaa1111"})
    assert answer.status_code == 200, answer.json
    assert answer.json == {
        "versions": ["project4-v001-aaaa1111", "project4-v002-bbbb2222"],
        "current": "project4-v001-aaaa1111",
        "pinned": "project4-v001-aaaa1111",
    }
    assert predicted(client, sample) == ("project4-v001-aaaa1111", ["blue", "red"])
    assert predicted(client, sample, "6.1700000000")[0] == "project6-v001-cccc3333", "other projects unchanged"
    status = client.get("/training/status", query_string={"project": 4}).json["4"]
    assert (status["current"], status["pinned"]) == ("project4-v001-aaaa1111", "project4-v001-aaaa1111")

    answer = client.post("/versions/unpin", json={"project": {"id": 4}})
    assert answer.status_code == 200, answer.json
    assert (answer.json["current"], answer.json["pinned"]) == ("project4-v002-bbbb2222", None)
    setup = client.post("/setup", json={"project": "4.1700000000", "schema": CONFIG}).json
    assert setup["model_version"] == "project4-v002-bbbb2222", "unpin serves the newest published version again"


def test_pinning_base_serves_the_base_weights(
    two_versions: VersionStore, client: FlaskClient, sample_images: list[SampleImage]
) -> None:
    sample = sample_images[0]
    base_version, base_labels = predicted(client, sample, "5.1700000000")  # a project with no versions
    assert base_labels == ["blue"]
    assert predicted(client, sample) == ("project4-v002-bbbb2222", ["blue", "red"])

    answer = client.post("/versions/pin", json={"project": 4, "version": "base"})
    assert answer.status_code == 200, answer.json
    assert (answer.json["current"], answer.json["pinned"]) == (None, "base")
    assert predicted(client, sample) == (base_version, ["blue"]), "the base weights, with their own classes"
    assert client.get("/versions").json["pinned"] == {"4": "base", "6": None}


def test_an_unknown_version_is_404_with_the_stored_names(two_versions: VersionStore, client: FlaskClient) -> None:
    for name in ("project4-v009-00000000", "../6/project6-v001-cccc3333"):
        answer = client.post("/versions/pin", json={"project": 4, "version": name})
        assert answer.status_code == 404
        assert answer.json["status"] == "error"
        assert answer.json["versions"] == ["project4-v001-aaaa1111", "project4-v002-bbbb2222"]
        assert "project4-v001-aaaa1111, project4-v002-bbbb2222" in answer.json["error"]
    assert two_versions.pinned(4) is None


@pytest.mark.parametrize(
    ("route", "body", "message"),
    [
        ("/versions/pin", {"project": 4}, "expects 'version' to be a version name or 'base'"),
        ("/versions/pin", {"project": 4, "version": 3}, "it is a JSON number"),
        ("/versions/pin", {"version": "base"}, "expects a JSON object with the 'project' id"),
        ("/versions/pin", {"project": "four", "version": "base"}, "four is not a project id"),
        ("/versions/unpin", {}, "expects a JSON object with the 'project' id"),
        ("/versions/unpin", {"project": -4}, "-4 is not a project id"),
        ("/versions", {}, "expects a JSON object with the 'project' id"),
    ],
)
def test_bad_bodies_are_400_and_change_nothing(
    two_versions: VersionStore, client: FlaskClient, route: str, body: dict[str, object], message: str
) -> None:
    answer = client.post(route, json=body)
    assert answer.status_code == 400
    assert message in answer.json["error"]
    assert (two_versions.pinned(4), two_versions.current(4)) == (None, two_versions.versions(4)[-1])


def test_a_bad_project_query_is_400(two_versions: VersionStore, client: FlaskClient) -> None:
    answer = client.get("/versions", query_string={"project": "4/../6"})
    assert answer.status_code == 400 and "is not a project id" in answer.json["error"]
