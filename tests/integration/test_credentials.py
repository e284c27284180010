"""The Label Studio API key goes to Label Studio only: through the backend under gunicorn, with real HTTP servers.

127.0.0.1 plays Label Studio (it records every request and its Authorization header) and 127.0.0.2 another host (an
attacker's, or any outside server). Both are allowed by MEDIA_ALLOWED_HOSTS here, so that what reaches the other
host is decided by the credential rules alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from conftest import BOXES_CONFIG, SampleImage
from label_studio_yolo.credentials import AccessBook, LabelStudioAccess
from label_studio_yolo.errors import MediaError, SetupRefused
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from label_studio_yolo.settings import BackendSettings
from test_api import assert_matches_truth
from tests.e2e.conftest import BackendServer, backend_server
from tests.support.image_server import FileServer, serve_files

ENV_KEY = "environment-key-0123456789"
SETUP_TOKEN = "label-studio-token-abcdef"
ATTACKER_TOKEN = "attacker-token"
LABELS = {"red": "Red box", "blue": "Blue"}
UPLOAD = "/data/upload/1/a.png"


@dataclass(frozen=True)
class Hosts:
    label_studio: FileServer
    other: FileServer
    sample: SampleImage

    def other_port(self) -> int:
        return int(self.other.url.rsplit(":", 1)[1])

    def reset(self) -> None:
        self.label_studio.requests.clear()
        self.other.requests.clear()


@pytest.fixture(scope="module")
def hosts(sample_images: list[SampleImage]) -> Iterator[Hosts]:
    with serve_files(token=ENV_KEY) as label_studio, serve_files(host="127.0.0.2") as other:
        body = sample_images[0].path.read_bytes()
        label_studio.add(UPLOAD, body)
        other.add(UPLOAD, body)
        other.add("/img/a.png", body)
        yield Hosts(label_studio, other, sample_images[0])


def start_backend(model_root: Path, work: Path, **settings: str) -> Any:
    return backend_server(model_root, work, MEDIA_ALLOWED_HOSTS="public,127.0.0.1,127.0.0.2", **settings)


@pytest.fixture(scope="module")
def with_url(hosts: Hosts, model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    """LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY set, as the README says to run it."""
    work = tmp_path_factory.mktemp("with-url")
    with start_backend(model_root, work, LABEL_STUDIO_URL=hosts.label_studio.url, LABEL_STUDIO_API_KEY=ENV_KEY) as b:
        yield b


@pytest.fixture(scope="module")
def key_only(hosts: Hosts, model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    """LABEL_STUDIO_API_KEY set, LABEL_STUDIO_URL not: Label Studio's address comes from /setup."""
    with start_backend(model_root, tmp_path_factory.mktemp("key-only"), LABEL_STUDIO_API_KEY=ENV_KEY) as backend:
        yield backend


def setup(backend: BackendServer, project: str, hostname: str, token: str) -> requests.Response:
    body = {"project": project, "schema": BOXES_CONFIG, "hostname": hostname, "access_token": token}
    return requests.post(f"{backend.url}/setup", json=body, timeout=60)


def predict(backend: BackendServer, project: str, *images: str) -> list[Any]:
    tasks = [{"id": index, "data": {"image": image}} for index, image in enumerate(images, 1)]
    body = {"tasks": tasks, "project": project, "label_config": BOXES_CONFIG, "params": {}}
    response = requests.post(f"{backend.url}/predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def test_a_path_that_names_another_host_is_fetched_from_label_studio(hosts: Hosts, with_url: BackendServer) -> None:
    hosts.reset()
    trick = f"/http://127.0.0.2:{hosts.other_port()}/img/a.png"

    results = predict(with_url, "31.1700000000", trick, UPLOAD)

    assert hosts.other.requests == [], "nothing went to the other host"
    assert (trick, f"Token {ENV_KEY}") in hosts.label_studio.requests  # a path on Label Studio (404 there)
    assert results[0] == []
    assert_matches_truth(results[1]["result"], hosts.sample, LABELS)


def test_a_setup_token_never_goes_to_another_host(hosts: Hosts, with_url: BackendServer) -> None:
    hosts.reset()
    other = f"http://127.0.0.2:{hosts.other_port()}"
    assert setup(with_url, "32.1700000000", other, SETUP_TOKEN).status_code == 200

    results = predict(with_url, "32.1700000000", UPLOAD, f"/{other}/img/a.png", f"{other}/img/a.png")

    assert_matches_truth(results[0]["result"], hosts.sample, LABELS)
    assert (UPLOAD, f"Token {ENV_KEY}") in hosts.label_studio.requests, "LABEL_STUDIO_URL wins over /setup"
    assert {auth for _, auth in hosts.label_studio.requests} == {f"Token {ENV_KEY}"}
    assert hosts.other.requests == [("/img/a.png", None)], "the absolute URL is fetched without any key"
    assert_matches_truth(results[2]["result"], hosts.sample, LABELS)
    assert ENV_KEY not in with_url.log.read_text() and SETUP_TOKEN not in with_url.log.read_text()


def test_without_label_studio_url_the_first_hostname_of_a_project_is_kept(
    hosts: Hosts, key_only: BackendServer
) -> None:
    hosts.reset()
    other = f"http://127.0.0.2:{hosts.other_port()}"
    assert setup(key_only, "41.1700000000", hosts.label_studio.url, SETUP_TOKEN).status_code == 200

    moved = setup(key_only, "41.1700000000", other, ATTACKER_TOKEN)
    results = predict(key_only, "41.1700000000", UPLOAD)

    assert moved.status_code == 403
    assert "was set up from Label Studio at http://127.0.0.1:" in moved.json()["error"]
    assert "was set up from Label Studio at" in key_only.log.read_text(), "the refusal is logged"
    assert results == [[]], "Label Studio's own token, which this fake Label Studio refuses: the key is not used"
    assert hosts.label_studio.requests == [(UPLOAD, f"Token {SETUP_TOKEN}")]
    assert hosts.other.requests == []


def test_without_label_studio_url_the_environment_key_goes_nowhere(hosts: Hosts, key_only: BackendServer) -> None:
    """An attacker's /setup first, with its own host: it gets only the token it sent, before or after Label
    Studio's /setup, in any worker."""
    hosts.reset()
    other = f"http://127.0.0.2:{hosts.other_port()}"
    assert setup(key_only, "666.1700000000", other, ATTACKER_TOKEN).status_code == 200  # before Label Studio's
    assert setup(key_only, "42.1700000000", hosts.label_studio.url, SETUP_TOKEN).status_code == 200

    predict(key_only, "666.1700000000", UPLOAD)
    predict(key_only, "42.1700000000", UPLOAD)

    assert hosts.other.requests == [(UPLOAD, f"Token {ATTACKER_TOKEN}")], "only the token it sent itself"
    assert hosts.label_studio.requests == [(UPLOAD, f"Token {SETUP_TOKEN}")]
    log = key_only.log.read_text()
    assert ENV_KEY not in log
    assert "LABEL_STUDIO_API_KEY is set but LABEL_STUDIO_URL is not: the key is not used" in log


def test_a_setup_hostname_into_the_backends_own_network_is_refused(hosts: Hosts, key_only: BackendServer) -> None:
    """127.0.0.3 (the backend's loopback, where Redis or an admin port may listen) is outside this backend's
    MEDIA_ALLOWED_HOSTS: a /setup naming it there is refused, with the setting that fixes a real Label Studio."""
    with serve_files(host="127.0.0.3") as inside:
        inside.add(UPLOAD, hosts.sample.path.read_bytes())

        refused = setup(key_only, "43.1700000000", inside.url, ATTACKER_TOKEN)
        results = predict(key_only, "43.1700000000", UPLOAD)

        assert refused.status_code == 403
        error = refused.json()["error"]
        assert f"/setup says Label Studio is at {inside.url}. Refused: 127.0.0.3 is a loopback address" in error
        assert error.endswith(f"set LABEL_STUDIO_URL={inside.url}")
        assert results == [[]]
        assert inside.requests == [], "nothing reached the host /setup named"


def test_a_label_studio_from_setup_is_checked_on_every_connection(hosts: Hosts) -> None:
    """A name that passed at /setup but resolves into the backend's network later is refused when connecting."""
    loader = ImageLoader(
        MediaSettings(label_studio_url=hosts.label_studio.url, api_key=SETUP_TOKEN, label_studio_from_setup=True)
    )
    hosts.reset()

    with pytest.raises(MediaError) as refused:
        loader.read_bytes(UPLOAD)

    assert "127.0.0.1 is a loopback address" in str(refused.value)
    assert str(refused.value).endswith(f"if {hosts.label_studio.url} is your Label Studio, set LABEL_STUDIO_URL to it")
    assert hosts.label_studio.requests == []


def test_a_password_in_a_task_url_is_not_logged(hosts: Hosts, with_url: BackendServer) -> None:
    url = f"http://alice:hunter2@127.0.0.2:{hosts.other_port()}/missing.png"

    assert predict(with_url, "33.1700000000", url) == [[]]

    log = with_url.log.read_text()
    assert "alice:***@127.0.0.2" in log
    assert "hunter2" not in log


def test_a_failure_s_own_text_does_not_leak_the_url_s_credentials(hosts: Hosts, with_url: BackendServer) -> None:
    """https to a plain-HTTP port: requests' error quotes the URL's path and query, and its reason is a string (the
    refusal check crashed on it, logging a traceback per task)."""
    query = "X-Amz-Signature=sekrit-signature&X-Amz-Credential=AKIA-credential&token=t0ken"
    url = f"https://alice:hunter2@127.0.0.2:{hosts.other_port()}/a.png?{query}"
    before = len(with_url.log.read_text())

    assert predict(with_url, "35.1700000000", url, UPLOAD)[0] == []

    log = with_url.log.read_text()[before:]
    assert "Task 1: no prediction, media not loaded: Could not download https://alice:***@127.0.0.2" in log
    assert "SSL" in log and "AttributeError" not in log and "Traceback" not in log
    assert not [secret for secret in ("hunter2", "sekrit-signature", "AKIA-credential", "t0ken") if secret in log]


def test_request_values_cannot_forge_log_lines(hosts: Hosts, with_url: BackendServer) -> None:
    body = {
        "tasks": [{"id": "7\nERROR forged line", "data": {"image": "/missing\n.png"}}],
        "project": "34.1700000000\nERROR forged project",
        "label_config": BOXES_CONFIG,
    }
    assert requests.post(f"{with_url.url}/predict", json=body, timeout=60).json()["results"] == [[]]

    lines = with_url.log.read_text().splitlines()
    assert not [line for line in lines if line.startswith("ERROR forged")]
    assert any("Task 7\\nERROR forged line" in line for line in lines)


def test_https_label_studio_never_gets_its_key_over_plain_http(hosts: Hosts) -> None:
    """Same host and port as Label Studio's https URL, but http: no key in clear text."""
    hosts.reset()
    https_url = hosts.label_studio.url.replace("http://", "https://")
    loader = ImageLoader(MediaSettings(label_studio_url=https_url, api_key=ENV_KEY))

    with pytest.raises(MediaError, match="HTTP 401"):
        loader.read_bytes(hosts.label_studio.url + UPLOAD)

    assert hosts.label_studio.requests == [(UPLOAD, None)]


def settings(**values: str) -> BackendSettings:
    return BackendSettings(model_dir=Path("unused"), **values)  # type: ignore[arg-type]


def test_access_rules() -> None:
    book, allowed = AccessBook(), {"media_allowed_hosts": "*"}  # no DNS for these names
    assert book.record_setup("1.1", "http://ls:8080", "t1", settings(**allowed)).url == "http://ls:8080"
    with pytest.raises(SetupRefused, match="was set up from Label Studio at http://ls:8080"):
        book.record_setup("1.1", "https://ls:8080", "t2", settings(**allowed))
    with pytest.raises(SetupRefused, match="not Label Studio's URL"):
        book.record_setup("2.1", "http://user:pw@ls:8080", "t", settings(**allowed))
    assert book.record_setup("1.1", "HTTP://LS:8080/", "t3", settings(**allowed)).api_key == "t3", "a new token"
    keyed = settings(label_studio_api_key="env", **allowed)
    assert book.access_for("1.1", keyed).api_key == "t3", "without LABEL_STUDIO_URL the environment's key is unused"
    assert book.access_for("1.1", keyed).from_setup
    assert book.record_setup("3.1", "http://other:8080", "t4", keyed).api_key == "t4", "others only their own"
    pinned = settings(label_studio_url="http://ls:8080", label_studio_api_key="env")
    assert book.record_setup("4.1", "http://evil:1", "t5", pinned) == LabelStudioAccess("http://ls:8080", "env")
    assert book.access_for("9.1", settings()).url is None
    with pytest.raises(SetupRefused, match=r"Refused: 10.0.0.5 is a private address.*LABEL_STUDIO_URL=http://10.0.0.5"):
        book.record_setup("5.1", "http://10.0.0.5:8080", "t6", settings())
    with pytest.raises(SetupRefused, match="its host cannot be resolved here"):
        book.record_setup("6.1", "http://no-such-host.invalid:8080", "t7", settings())
