"""Static checks of the Kubernetes manifests in deploy/kubernetes: every resource validates against the Kubernetes
API schemas (kubernetes-validate, strict: unknown fields are errors), and the pieces fit together: the kustomization
lists every manifest, web replicas and workers share their settings and one ReadWriteMany volume at the paths the
settings name, probes use the health check that sends Basic auth, and every setting is one the backend reads. No
cluster is needed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from label_studio_yolo.settings import BackendSettings
from tests.support.container import dockerfile_env
from tests.test_deployment_files import SERVING_VARIABLES, gunicorn_config

FOLDER = Path(__file__).resolve().parents[1] / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.37.0"
"""The API version validated against (the newest whose schemas kubernetes-validate ships)."""

HEALTH_CHECK = ["python", "-m", "label_studio_yolo.healthcheck", "/health"]


def documents(name: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((FOLDER / name).read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return documents("kustomization.yaml")[0]


def applied() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource ``kubectl apply -k`` creates, by (kind, name)."""
    return {
        (doc["kind"], doc["metadata"]["name"]): doc for name in kustomization()["resources"] for doc in documents(name)
    }


def pod_spec(name: str) -> dict[str, Any]:
    return dict(applied()[("Deployment", name)]["spec"]["template"]["spec"])


def mounts(name: str) -> dict[str, tuple[str, str | None]]:
    """Mount path -> (the volume's claim, or its kind such as ``emptyDir``; subPath) of the deployment's container."""
    spec = pod_spec(name)
    volumes = {volume.pop("name"): volume for volume in copy.deepcopy(spec["volumes"])}
    sources = {
        name: v.get("persistentVolumeClaim", {}).get("claimName") or next(iter(v)) for name, v in volumes.items()
    }
    return {m["mountPath"]: (sources[m["name"]], m.get("subPath")) for m in spec["containers"][0]["volumeMounts"]}


@pytest.mark.parametrize(
    "name", sorted(path.name for path in FOLDER.glob("*.yaml") if path.name != "kustomization.yaml")
)
def test_every_resource_validates_against_the_kubernetes_schemas(name: str) -> None:
    for document in documents(name):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validation_catches_a_broken_manifest() -> None:
    broken = copy.deepcopy(applied()[("Deployment", "yolo-backend")])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 10  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    del broken["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=False)


def test_the_kustomization_applies_every_manifest_but_the_secret_example() -> None:
    listed = set(kustomization()["resources"])
    present = {path.name for path in FOLDER.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present - {"secret.example.yaml"}
    assert ("Secret", "yolo-backend-secrets") not in applied(), "real secrets never come from the repository"


def test_replicas_and_workers_share_settings_secrets_and_one_read_write_many_volume() -> None:
    config = applied()[("ConfigMap", "yolo-backend-config")]["data"]
    claim = applied()[("PersistentVolumeClaim", "yolo-shared")]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name in ("yolo-backend", "yolo-worker"):
        env_from = pod_spec(name)["containers"][0]["envFrom"]
        assert env_from == [
            {"configMapRef": {"name": "yolo-backend-config"}},
            {"secretRef": {"name": "yolo-backend-secrets"}},
        ]
        shared = mounts(name)
        assert shared[config["MODEL_ROOT"]] == ("yolo-shared", "models"), name
        assert shared[config["MODEL_DIR"]] == ("yolo-shared", "model-versions"), name
        assert shared[dockerfile_env()["YOLO_CONFIG_DIR"]][0] == "emptyDir", "ultralytics writes its settings there"
    assert pod_spec("yolo-backend")["containers"][0]["image"] == pod_spec("yolo-worker")["containers"][0]["image"]


def test_every_configured_variable_is_a_setting_the_backend_reads() -> None:
    settings = {name.upper() for name in BackendSettings.model_fields}
    config = set(applied()[("ConfigMap", "yolo-backend-config")]["data"])
    secret = set(documents("secret.example.yaml")[0]["stringData"])
    assert config - settings - SERVING_VARIABLES == set()
    assert secret <= settings and {"LABEL_STUDIO_API_KEY", "BASIC_AUTH_USER", "BASIC_AUTH_PASS"} == secret
    assert {"MODEL_DIR", "MODEL_ROOT", "REDIS_URL", "LABEL_STUDIO_URL"} <= config


def test_redis_url_names_the_redis_service() -> None:
    config = applied()[("ConfigMap", "yolo-backend-config")]["data"]
    service = applied()[("Service", "yolo-redis")]
    assert config["REDIS_URL"] == f"redis://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}/0"
    worker = pod_spec("yolo-worker")["containers"][0]["command"]
    assert worker == [
        "rq",
        "worker",
        "-w",
        "label_studio_yolo.training.worker.TrainingWorker",
        "--url",
        "$(REDIS_URL)",
        "training",
    ], "the queue the backend schedules on, with the worker class that sends heartbeats"


def test_the_backend_is_probed_with_the_health_check_that_sends_basic_auth() -> None:
    container = pod_spec("yolo-backend")["containers"][0]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == HEALTH_CHECK, probe
        assert container[probe]["timeoutSeconds"] >= 5, "a cold Python start of the check takes about a second"


def test_a_stopping_replica_leaves_the_service_before_it_stops_and_finishes_its_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = pod_spec("yolo-backend")
    container = spec["containers"][0]
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    predict_budget = BackendSettings.model_fields["predict_time_budget"].default
    graceful = gunicorn_config(monkeypatch)["graceful_timeout"]
    assert spec["terminationGracePeriodSeconds"] > graceful > predict_budget, "gunicorn.conf.py's graceful_timeout"
    assert "command" not in spec["containers"][0] and "args" not in spec["containers"][0], "the image's CMD serves"
    assert applied()[("PodDisruptionBudget", "yolo-backend")]["spec"]["minAvailable"] == 1
    strategy = applied()[("Deployment", "yolo-backend")]["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_pods_run_as_the_images_user_with_resources_set() -> None:
    for name in ("yolo-backend", "yolo-worker"):
        spec = pod_spec(name)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == spec["securityContext"]["fsGroup"] == 1000, "the image's app"
        resources = spec["containers"][0]["resources"]
        assert resources["requests"]["cpu"] == resources["limits"]["cpu"], "TORCH_THREADS follows the CPU limit"
        assert "memory" in resources["limits"]


def test_the_service_reaches_the_backend_pods() -> None:
    service = applied()[("Service", "yolo-backend")]
    labels = applied()[("Deployment", "yolo-backend")]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    port = pod_spec("yolo-backend")["containers"][0]["ports"][0]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"] and port["containerPort"] == 9090
