"""``<Choices>``: the class of the whole image from a classification model."""

from __future__ import annotations

from typing import Any

from label_studio_yolo.inference.outputs import ModelOutput
from label_studio_yolo.tags.base import Control, build_region, register_control


@register_control
class ChoicesControl(Control):
    """The best class above the threshold; with ``choice="multiple"``, every class above it (best first)."""

    control_type = "Choices"
    model_tasks = frozenset({"classify"})

    def regions(self, output: ModelOutput) -> list[dict[str, Any]]:
        best_score: dict[str, float] = {}
        for item in output.classes:  # best first
            label = self.spec.labels.label_for(item.class_name)
            if label is not None and item.score >= self.spec.threshold and label not in best_score:
                best_score[label] = item.score
        if not best_score:
            return []
        chosen = list(best_score) if self.spec.attribute("choice") == "multiple" else list(best_score)[:1]
        return [build_region(self.spec, chosen, {}, best_score[chosen[0]], size=None)]
