"""``<Choices>``: the class of the whole image, predicted by a classification model and learnt by one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from label_studio_yolo.errors import AnnotationError
from label_studio_yolo.inference.outputs import ModelOutput
from label_studio_yolo.label_config import ControlSpec
from label_studio_yolo.tags.base import AnnotatedRegion, Control, build_region


@dataclass(frozen=True)
class ChoiceRegion(AnnotatedRegion):
    """The class of the whole image (the first choice when several are chosen)."""


class ChoicesControl(Control):
    """The best class above the threshold; with ``choice="multiple"``, every class above it (best first)."""

    control_type = "Choices"
    model_tasks = frozenset({"classify"})
    result_type = "choices"
    learns_for = frozenset({"classify"})

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

    @classmethod
    def read_region(cls, item: dict[str, Any], label: str) -> ChoiceRegion:
        return ChoiceRegion(str(item["from_name"]), label)

    @classmethod
    def image_class(cls, regions: Sequence[AnnotatedRegion], source: ControlSpec) -> str:
        """The class of the whole image: the first choice.

        Raises:
            AnnotationError: there is no choice, or the choice is no longer one of ``source``'s.
        """
        choice = next((region for region in regions if isinstance(region, ChoiceRegion)), None)
        tag = f"<{source.control_type} name={source.from_name!r}>"
        if choice is None:
            raise AnnotationError(f"the annotation has no choice of {tag}")
        if choice.label not in source.label_names:
            raise AnnotationError(f"choice {choice.label!r} is not a <Choice> of {tag} any more")
        return choice.label
