"""End to end: a real Label Studio 1.23 and the backend behind HTTP Basic auth, the steps docs/security.md gives:
the backend started with ``make run`` and a password, the webhook given the header by the documented curl commands.

Label Studio sends the ML backend's credentials (``auth_method="BASIC_AUTH"``) with /health, /setup, /predict and
the START_TRAINING call to /webhook. The project webhook it creates for annotation events (``<backend>/webhook``)
carries no credentials: the backend refuses those events until the webhook's headers are patched.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import requests
from label_studio_sdk.core.api_error import ApiError

from conftest import BOXES_CONFIG, PROJECT_ROOT, WEIGHTS_NAME, SampleImage
from tests.e2e.conftest import LabelStudioServer
from tests.e2e.test_label_studio_predictions import (
    assert_prediction_matches,
    retrieve_predictions,
    stored_predictions,
    upload_images,
)
from tests.support.basic_auth import PASSWORD, USER, basic
from tests.support.documented import block_containing, documented, fill_in, run_as_user, serving_as_user, user_env
from tests.support.processes import free_port
from tests.support.redis_server import running_redis

pytestmark = pytest.mark.e2e

MAKE_RUN_WITH_PASSWORD = "BASIC_AUTH_USER=label-studio BASIC_AUTH_PASS='<long random password>' make run"
PATCH_WEBHOOK = 'curl -s -H "Authorization: Token $LS_TOKEN" "$LS/api/webhooks/?project=3"'
"""docs/security.md: how to start the backend with a password, and the block that gives the webhook the header."""

REFUSED = "authentication parameters were either not provided or are incorrect"
"""What Label Studio answers when connecting gets 401 from /health."""

T = TypeVar("T")


def wait_for(probe: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """``probe()`` once it is truthy (Label Studio may send webhooks after its API call has answered)."""
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.2)
    return value


def box_annotation(sample: SampleImage) -> list[dict[str, Any]]:
    """One rectangle around the sample's first object (192 x 144 images)."""
    box = sample.truth[0]
    value = {"x": box.x0 / 1.92, "y": box.y0 / 1.44, "width": (box.x1 - box.x0) / 1.92}
    value |= {"height": (box.y1 - box.y0) / 1.44, "rotation": 0, "rectanglelabels": ["Red box"]}
    return [{"from_name": "label", "to_name": "image", "type": "rectanglelabels", "value": value}]


def training_jobs(url: str, project: int) -> list[dict[str, Any]]:
    """The project's jobs as the backend's /training/status shows them."""
    status = requests.get(f"{url}/training/status", params={"project": project}, auth=(USER, PASSWORD), timeout=10)
    status.raise_for_status()
    return list(status.json()[str(project)]["jobs"])


def test_label_studio_uses_a_backend_behind_a_password(
    label_studio: LabelStudioServer, model_root: Path, sample_images: list[SampleImage], tmp_path: Path
) -> None:
    client = label_studio.client
    project = client.projects.create(title="E2E Basic auth", label_config=BOXES_CONFIG)
    samples = sample_images[:2]
    task_ids = upload_images(label_studio, project.id, samples)
    first, second = (task_ids[sample.path.name] for sample in samples)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_redis() as redis_url:  # no rq worker: queued jobs stay queued, visible in /training/status
        settings = {"MODEL_ROOT": str(model_root), "MODEL_PATH": WEIGHTS_NAME, "MODEL_DIR": str(tmp_path / "versions")}
        settings |= {"PORT": str(port), "REDIS_URL": redis_url, "TRAIN_MIN_NEW_ANNOTATIONS": "1"}
        settings |= {"LABEL_STUDIO_URL": label_studio.url}  # exported in the user's shell, as the README says
        start = fill_in(documented(MAKE_RUN_WITH_PASSWORD), {"'<long random password>'": shlex.quote(PASSWORD)})
        log = tmp_path / "backend.log"
        health = f"http://{USER}:{quote(PASSWORD)}@127.0.0.1:{port}/health"
        with serving_as_user(start, health, PROJECT_ROOT, user_env(tmp_path / "home", **settings), log):
            warm_up = {"project": "warm-up", "schema": BOXES_CONFIG}  # Label Studio gives /setup 3 s
            requests.post(f"{url}/setup", json=warm_up, auth=(USER, PASSWORD), timeout=120).raise_for_status()
            wrong = {"auth_method": "BASIC_AUTH", "basic_auth_user": USER, "basic_auth_pass": "wrong"}
            for credentials in ({}, wrong):
                with pytest.raises(ApiError) as refused:
                    client.ml.create(project=project.id, url=url, title="YOLO", **credentials)
                assert refused.value.status_code == 400 and REFUSED in str(refused.value.body)

            right = {"auth_method": "BASIC_AUTH", "basic_auth_user": USER, "basic_auth_pass": PASSWORD}
            ml = client.ml.create(project=project.id, url=url, title="YOLO", is_interactive=False, **right)
            setup = {"project": "probe", "schema": BOXES_CONFIG}
            version = requests.post(f"{url}/setup", json=setup, auth=(USER, PASSWORD), timeout=10).json()
            retrieve_predictions(label_studio, project.id)
            for sample in samples:
                predictions = stored_predictions(label_studio, task_ids[sample.path.name])
                assert len(predictions) == 1, predictions
                assert_prediction_matches(predictions[0], sample, version["model_version"])

            hooks = client.webhooks.list(project=str(project.id))
            webhook = next(hook for hook in hooks if hook.url == f"{url}/webhook")  # Label Studio made it
            client.annotations.create(id=first, result=box_annotation(samples[0]))
            wait_for(lambda: "Refused POST /webhook from 127.0.0.1 with 401" in log.read_text(), "refused webhook")
            assert training_jobs(url, project.id) == [], "the annotation event without credentials must not count"

            patched = run_as_user(  # docs/security.md's curl commands, in the shell that started the backend
                fill_in(
                    block_containing(PATCH_WEBHOOK),
                    {
                        "LS=http://localhost:8080": f"LS={label_studio.url}",
                        "LS_TOKEN=...": f"LS_TOKEN={label_studio.token}",
                        "project=3": f"project={project.id}",
                        "<id>": str(webhook.id),
                    },
                ),
                PROJECT_ROOT,
                user_env(tmp_path / "home", BASIC_AUTH_USER=USER, BASIC_AUTH_PASS=PASSWORD),
                timeout=60,
            )
            assert patched.returncode == 0, patched.stderr
            assert f'"id":{webhook.id}' in patched.stdout.replace(" ", ""), "the first curl lists the webhook"
            assert client.webhooks.get(id=webhook.id).headers == {"Authorization": basic(USER, PASSWORD)}
            client.annotations.create(id=second, result=box_annotation(samples[1]))
            jobs = wait_for(lambda: training_jobs(url, project.id), "training job queued by the annotation event")
            assert jobs[0]["progress"]["reason"] == "ANNOTATION_CREATED"

            client.ml.train(id=ml.id)  # START_TRAINING, sent with the backend's credentials, folds into that job
            jobs = training_jobs(url, project.id)
            assert len(jobs) == 1 and jobs[0]["status"] == "queued"
            assert jobs[0]["progress"]["folded_events"] == 1
