"""ultralytics behaves the same in every process of the backend, whatever the process is called, whatever its settings
file and environment say: models from ``load_yolo`` return their results (never ``None``), write no ``runs/``, send
nothing to integrations and install nothing.

The checks run in a process of their own, named and set up as a user's: ``.../label-studio-yolo predict``, a home
with ultralytics' settings file as ultralytics writes it, an Ultralytics API key in the environment, no pytest.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import PROJECT_ROOT
from tests.support.documented import no_new_runs_folder, user_env
from tests.support.peak_memory import run_probe

PACKAGE = PROJECT_ROOT / "label_studio_yolo"

CHILD = """
import json, sys
import numpy as np
from ultralytics.utils import callbacks
from ultralytics.utils.checks import check_requirements
from label_studio_yolo.inference.ultralytics_process import load_yolo

model = load_yolo(sys.argv[2])
results = model.predict(np.full((96, 96, 3), 127, np.uint8), verbose=False)
defaults = callbacks.get_default_callbacks()
trainer = type("DetectionTrainer", (), {"callbacks": callbacks.get_default_callbacks()})()
callbacks.add_integration_callbacks(trainer)
print(json.dumps({
    "results": type(results).__name__,
    "saved": bool(model.predictor.args.save),
    "predictor_extra_callbacks": sum(len(model.predictor.callbacks[k]) - len(v) for k, v in defaults.items()),
    "trainer_extra_callbacks": sum(len(trainer.callbacks[k]) - len(v) for k, v in defaults.items()),
    "installed": check_requirements("label-studio-yolo-no-such-package>=1"),
}))
"""


def test_models_behave_as_a_library_in_a_process_named_like_ultralytics_own_command(
    tiny_weights: Path, tmp_path: Path
) -> None:
    script = tmp_path / "bin" / "label-studio-yolo"  # argv[0] ends in "yolo", and "predict" is an argument
    script.parent.mkdir()
    script.write_text(CHILD)
    work = tmp_path / "work"
    work.mkdir()
    env = user_env(tmp_path / "home", ULTRALYTICS_API_KEY="a-user-s-platform-key")

    with no_new_runs_folder(work, PROJECT_ROOT):
        done = subprocess.run(
            [sys.executable, str(script), "predict", str(tiny_weights)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["results"] == "list" and not report["saved"], "results returned, not saved under runs/"
    assert report["predictor_extra_callbacks"] == 0, "no analytics event after each prediction"
    assert report["trainer_extra_callbacks"] == 0, "no Platform streaming or experiment trackers in training"
    assert report["installed"] is False and "AutoUpdate disabled" in done.stdout + done.stderr, "nothing pip-installed"
    assert (tmp_path / "home" / ".config" / "Ultralytics" / "settings.json").is_file(), "the user's settings were read"


def test_every_yolo_model_of_the_package_is_made_by_load_yolo() -> None:
    """A ``YOLO(...)`` made elsewhere would skip the pins."""
    home = PACKAGE / "inference" / "ultralytics_process.py"
    makers = [
        f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != home
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and "YOLO" in (getattr(node.func, "id", None), getattr(node.func, "attr", None))
    ]
    assert sorted(PACKAGE.rglob("*.py")), "the package is where this test looks"
    assert makers == [], f"make YOLO models with load_yolo(): {makers}"


def test_an_openvino_export_sends_no_usage_events_from_forked_copies(tiny_weights: Path, tmp_path: Path) -> None:
    """OpenVINO's converter reported each export to Google Analytics from forked copies of the exporting process:
    three copies of a 540 MB process during a server's first start, counted against the pod's memory limit."""
    weights = tmp_path / "boxes.pt"
    weights.write_bytes(tiny_weights.read_bytes())
    probe = """
import os
forks = []
os.register_at_fork(before=lambda: forks.append(1))
from pathlib import Path
from label_studio_yolo.inference.runtimes import export_openvino
folder = export_openvino(Path(sys.argv[1]), 160)
print(json.dumps({"forks": len(forks), "exported": (folder / "metadata.yaml").is_file(),
                  "telemetry": sys.modules.get("openvino_telemetry") is not None}))
"""
    assert run_probe(probe, weights, timeout=300) == {"forks": 0, "exported": True, "telemetry": False}
