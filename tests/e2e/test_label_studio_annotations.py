"""End to end: annotations saved in a real Label Studio 1.23 become the same training data as the JSON we expect.

The training conversion tests build Label Studio's annotation JSON by hand. Here each kind of annotation (rotated
rectangles, polygons, brush masks, choices, keypoints with parent boxes) is saved through Label Studio's API, which
validates it against the labelling config, and read back the way a training job reads it. The dataset written
from what Label Studio returns must equal the one written from the hand-built JSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from label_studio_yolo.training.annotations import annotated_tasks
from tests.e2e.conftest import LabelStudioServer
from tests.training.test_dataset import boxes_project, data_uri, label_config, label_lines, write

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("kind", "yolo_task"),
    [("obb", "obb"), ("polygon", "segment"), ("brush", "segment"), ("classify", "classify"), ("pose", "pose")],
)
def test_annotations_stored_by_label_studio_train_the_same_dataset(
    label_studio: LabelStudioServer, tmp_path: Path, kind: str, yolo_task: str
) -> None:
    config = label_config(kind)
    expected: list[dict[str, Any]] = []
    for task, _truth in boxes_project(tmp_path / "local", 3, kind, seed=11):
        image = data_uri(tmp_path / "local" / "images" / f"{kind}{len(expected):02d}.png")
        expected.append({**task, "data": {"image": image}})

    client = label_studio.client
    project = client.projects.create(title=f"E2E {kind} annotations", label_config=config)
    for task in expected:
        stored = client.tasks.create(project=project.id, data=task["data"])
        client.annotations.create(id=stored.id, result=task["annotations"][0]["result"])
    exported = sorted(client.tasks.list(project=project.id, fields="all"), key=lambda t: t.id)
    assert len(exported) == len(expected)

    local, _ = write(expected, config, yolo_task, tmp_path / "from-json")
    remote, _ = write(exported, config, yolo_task, tmp_path / "from-label-studio")
    assert not local.skipped and not remote.skipped, (local.skipped, remote.skipped)
    for mine, theirs in zip(expected, exported, strict=True):
        if yolo_task == "classify":
            assert sorted(p.parent.name for p in remote.root.glob(f"*/*/{theirs.id}.png")) == sorted(
                p.parent.name for p in local.root.glob(f"*/*/{mine['id']}.png")
            )
            continue
        ours, stored_lines = label_lines(local, mine["id"]), label_lines(remote, theirs.id)
        assert len(ours) == len(stored_lines) > 0
        for line, stored_line in zip(ours, stored_lines, strict=True):
            assert stored_line == pytest.approx(line, abs=2e-6)


def test_an_annotation_begun_from_a_prediction_is_known_as_such(
    label_studio: LabelStudioServer, tmp_path: Path
) -> None:
    # Training keeps what an annotator deleted from a prediction deleted: it must learn which annotations began from
    # one. Label Studio's editor saves them with parent_prediction, as here.
    config = label_config("detect")
    made = boxes_project(tmp_path / "local", 2, "detect", seed=12)
    client = label_studio.client
    project = client.projects.create(title="E2E from predictions", label_config=config)
    stored = [
        client.tasks.create(
            project=project.id, data={"image": data_uri(tmp_path / "local" / "images" / f"detect{n:02d}.png")}
        )
        for n in range(2)
    ]
    result = made[0][0]["annotations"][0]["result"]
    prediction = client.predictions.create(task=stored[0].id, result=result, score=0.9, model_version="v1")
    client.annotations.create(id=stored[0].id, result=result[:1], parent_prediction=prediction.id)
    client.annotations.create(id=stored[1].id, result=made[1][0]["annotations"][0]["result"])

    read = annotated_tasks(client.tasks.list(project=project.id, fields="all"), "image", {"label"})

    assert [(task.task_id, task.from_prediction) for task in read] == [(stored[0].id, True), (stored[1].id, False)]
