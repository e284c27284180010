"""The backend's page in a real browser: headless Chromium (Debian's) against the backend under gunicorn, with Basic
auth on, showing versions that real training jobs made.

Project 7 labels the photo project's people, cups and cats, but its cup label is named ``<img src=x
onerror=alert(1)>``. One job trains with the defaults and is published; a second, with a learning rate that wrecks
what the model knew, is refused by the gate. The page must show both with the gate's reasons and charts, run none
of the label's markup, change what ``/setup`` serves through its buttons, and refuse a form posted from another
site.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from label_studio_yolo.settings import BackendSettings
from label_studio_yolo.training.job import train_annotated
from label_studio_yolo.versions import VersionStore
from tests.e2e.conftest import BackendServer, backend_server
from tests.support.photo_project import CONFIG, LABELS, annotated_task, project_scenes
from tests.support.photos import PEOPLE_IMGSZ, PEOPLE_MODEL, SCENE_SIZE

PROJECT = 7
AUTH = ("page-user", "page-password")
XSS_LABEL = "<img src=x onerror=alert(1)>"
XSS_CONFIG = CONFIG.replace('value="Cup"', 'value="&lt;img src=x onerror=alert(1)&gt;"')
XSS_LABELS = {**LABELS, "cup": XSS_LABEL}
TASKS = 20
"""Annotated tasks: as many as the learning tests, whose versions trained with the defaults publish."""

NEXT_PAGE_LOADED = "return document.readyState === 'complete' && !document.documentElement.dataset.pressed"
"""True once the page a button led to has loaded (the pressed page carried a mark)."""

PAGE_TIMEOUT = 60
"""Seconds to wait for a page the browser was sent to (a busy machine serves it slowly)."""

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Headless, as root, and quiet on a machine without internet (Chromium's own connections are refused here)."""

MISSING_BROWSER = (
    "The page's tests need Debian's Chromium and its driver (/usr/bin/chromium, /usr/bin/chromedriver): "
    "`make test` installs them as root; elsewhere run `sudo apt-get install chromium chromium-driver`"
)


@dataclass(frozen=True)
class Versions:
    published: str
    refused: str
    refusal: str
    store: VersionStore
    models: Path
    """MODEL_ROOT, with the base weights the versions started from (``base.pt``)."""


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Versions:
    """Two versions of project 7 made by real training jobs: the first published, the second refused."""
    root = tmp_path_factory.mktemp("page")
    scenes = project_scenes(root / "scenes", TASKS, 1, SCENE_SIZE)["train"]
    (root / "models").mkdir()
    shutil.copy2(PEOPLE_MODEL, root / "models" / "base.pt")
    tasks = [
        annotated_task(100 + n, scene, f"/data/local-files/?d=train/{scene.path.name}", XSS_LABELS)
        for n, scene in enumerate(scenes)
    ]
    settings: dict[str, Any] = {
        "model_root": root / "models",
        "model_path": "base.pt",
        "model_dir": root / "versions",
        "local_files_document_root": root / "scenes",
        "train_imgsz": PEOPLE_IMGSZ,
        "torch_threads": 2,
        "inference_runtime": "pytorch",
    }
    first = train_annotated(PROJECT, XSS_CONFIG, tasks, BackendSettings(**settings))
    # Everything unfrozen at 50 times the learning rate, for two epochs: people are forgotten.
    wreck = {"train_lr": 0.05, "train_freeze": 0, "train_epochs": 2, "train_distill": 0.0}
    second = train_annotated(PROJECT, XSS_CONFIG, tasks, BackendSettings(**settings, **wreck))
    assert first["published"] and not second["published"], (first["gate"], second["gate"])
    store = VersionStore(root / "versions")
    return Versions(first["version"], second["version"], second["gate"]["reason"], store, root / "models")


@pytest.fixture(scope="module")
def backend(versions: Versions, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendServer]:
    folder = tmp_path_factory.mktemp("page-backend")
    settings = {"MODEL_PATH": "base.pt", "MODEL_DIR": str(versions.store.root), "INFERENCE_RUNTIME": "pytorch"}
    with backend_server(versions.models, folder, auth=AUTH, **settings) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail(MISSING_BROWSER)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    with webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver)) as chrome:
        yield chrome


def page_url(backend: BackendServer, path: str = "/ui/") -> str:
    """``path`` on the backend with the Basic credentials in the URL, as a person types them at the prompt."""
    return backend.url.replace("http://", f"http://{AUTH[0]}:{AUTH[1]}@") + path


def served_version(backend: BackendServer) -> str:
    body = {"project": f"{PROJECT}.1700000000", "schema": XSS_CONFIG}
    answer = requests.post(f"{backend.url}/setup", json=body, auth=AUTH, timeout=60)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model_version"])


def press(browser: WebDriver, version: str | None, action: str) -> str:
    """Press the ``action`` button (of ``version``'s box, or the project's) and return the note the page shows."""
    scope = browser.find_element(By.ID, f"version-{version}") if version else browser
    button = scope.find_element(By.CSS_SELECTOR, f"button[value='{action}']")
    browser.execute_script("document.documentElement.dataset.pressed = 'yes'")  # gone once the next page loads
    button.click()
    WebDriverWait(browser, PAGE_TIMEOUT, ignored_exceptions=(WebDriverException,)).until(
        lambda b: b.execute_script(NEXT_PAGE_LOADED)
    )
    return browser.find_element(By.ID, "done").text


def wait_for(browser: WebDriver, element_id: str) -> Any:
    """The element with ``element_id`` once the page the browser is going to shows it."""
    return WebDriverWait(browser, PAGE_TIMEOUT).until(
        expected_conditions.presence_of_element_located((By.ID, element_id))
    )


def test_the_page_asks_for_the_password_and_lists_the_project(backend: BackendServer, browser: WebDriver) -> None:
    refused = requests.get(f"{backend.url}/ui/", timeout=10)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic ")

    browser.get(page_url(backend))
    rows = browser.find_elements(By.CSS_SELECTOR, "#projects tr")
    assert [row.text.split()[:2] for row in rows[1:]] == [["Project", str(PROJECT)]]


def test_a_project_shows_each_version_with_the_gate_s_verdict_reason_and_charts(
    backend: BackendServer, browser: WebDriver, versions: Versions
) -> None:
    browser.get(page_url(backend, f"/ui/projects/{PROJECT}"))
    names = [box.get_attribute("id") for box in browser.find_elements(By.CSS_SELECTOR, ".version")]
    assert names == [f"version-{versions.refused}", f"version-{versions.published}"], "newest first"
    refused = browser.find_element(By.ID, f"version-{versions.refused}")
    assert "not published" in refused.find_element(By.TAG_NAME, "h3").text
    assert versions.refusal in refused.find_element(By.CLASS_NAME, "reason").text
    assert f"--version {versions.refused}" in refused.find_element(By.CLASS_NAME, "advice").text, "what to do next"
    verdicts = {
        row.find_elements(By.TAG_NAME, "td")[0].text: row.find_elements(By.TAG_NAME, "td")[4].text
        for row in refused.find_elements(By.CSS_SELECTOR, "table.gate tr")[1:]
    }
    assert verdicts["Person"] == "dropped", verdicts
    published = browser.find_element(By.ID, f"version-{versions.published}")
    assert "served" in published.find_element(By.TAG_NAME, "h3").text
    for box in (refused, published):
        bars, curve = box.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(bars.find_elements(By.TAG_NAME, "rect")) >= 2 * 3, "a served and a new bar per label"
        assert curve.find_elements(By.TAG_NAME, "polyline"), "the training losses per epoch"


def test_a_label_made_of_markup_shows_as_text_and_runs_nothing(
    backend: BackendServer, browser: WebDriver, versions: Versions
) -> None:
    browser.get(page_url(backend, f"/ui/projects/{PROJECT}"))
    labels = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "table.gate td:first-child")]
    assert XSS_LABEL in labels
    chart_labels = [text.text for text in browser.find_elements(By.CSS_SELECTOR, "svg.chart text")]
    assert XSS_LABEL in chart_labels
    assert browser.find_elements(By.TAG_NAME, "img") == [], "no element was made of the label"
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()


def test_the_buttons_pin_roll_back_and_unpin_what_label_studio_is_served(
    backend: BackendServer, browser: WebDriver, versions: Versions
) -> None:
    assert versions.published in served_version(backend)
    browser.get(page_url(backend, f"/ui/projects/{PROJECT}"))

    assert press(browser, versions.refused, "pin").startswith("Pinned")
    assert versions.refused in served_version(backend)
    assert press(browser, None, "rollback").startswith("Rolled back")
    base = served_version(backend)
    assert versions.published not in base and versions.refused not in base
    assert press(browser, None, "unpin").startswith("Unpinned")
    assert versions.published in served_version(backend), "the newest published version"
    assert versions.store.pinned(PROJECT) is None


class ForgedForm(BaseHTTPRequestHandler):
    """Another site's page that posts a roll-back form to the backend as soon as it loads."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}"><input name="csrf_token" value="guessed"></form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def test_a_form_posted_from_another_site_is_refused(
    backend: BackendServer, browser: WebDriver, versions: Versions
) -> None:
    browser.get(page_url(backend, f"/ui/projects/{PROJECT}"))  # the person is logged in, with the page's cookie
    ForgedForm.target = f"{backend.url}/ui/projects/{PROJECT}/rollback"
    with ThreadingHTTPServer(("127.0.0.1", 0), ForgedForm) as other_site:
        threading.Thread(target=other_site.serve_forever, daemon=True).start()
        browser.get(f"http://127.0.0.1:{other_site.server_address[1]}/")
        reason = wait_for(browser, "reason").text  # the backend's answer to the post
        other_site.shutdown()
    assert "another site" in reason
    assert versions.store.pinned(PROJECT) is None, "nothing was rolled back"
    assert versions.published in served_version(backend)


def test_train_now_queues_a_job_and_the_page_follows_it_to_its_outcome(
    backend: BackendServer, browser: WebDriver
) -> None:
    browser.get(page_url(backend, f"/ui/projects/{PROJECT}"))
    assert press(browser, None, "train") == "Training queued."
    # The backend has no Label Studio to read annotations from: the job fails, and the page says why.
    for _ in range(60):
        browser.get(page_url(backend, f"/ui/projects/{PROJECT}"))
        job = browser.find_element(By.ID, "job").text
        if "last job failed" in job:
            break
        assert browser.find_elements(By.CSS_SELECTOR, "meta[http-equiv='refresh']"), "a running job: it refreshes"
        time.sleep(1)
    assert "LABEL_STUDIO_URL" in job, job
