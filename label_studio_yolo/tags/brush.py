"""``<BrushLabels>``: segmentation masks as Label Studio brush strokes (RLE, encoded by label-studio-sdk)."""

from __future__ import annotations

from typing import Any

import numpy as np
from label_studio_sdk.converter.brush import mask2rle

from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.tags.base import ObjectControl, register_control


@register_control
class BrushLabelsControl(ObjectControl):
    """One brush region per object, its mask scaled to the original image."""

    control_type = "BrushLabels"
    model_tasks = frozenset({"segment"})

    def geometry(self, detection: Detection, output: ModelOutput) -> dict[str, Any] | None:
        if output.masks is None:
            return None
        mask = output.masks.full_size(detection.index)
        if not mask.any():
            return None
        rle = mask2rle(mask.astype(np.uint8) * 255)  # type: ignore[no-untyped-call]
        return {"format": "rle", "rle": rle}
