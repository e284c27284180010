"""The two ways a vision-language model fills a control: boxes on the whole image, or a label for each YOLO box.

Both give a :class:`~label_studio_yolo.inference.outputs.ModelOutput` named by the control's own labels, so the
control turns it into regions as it turns YOLO's. Answers are cached per process (by endpoint, model, image and
question), so a task predicted again asks nothing twice. Calls per task: zero-shot, one per control; refine, one
per YOLO box a label may take (at most :data:`MAX_REFINED_BOXES`).

Example:
    >>> stage = RefineStage(client, ["Airplane", "Drone"], fallback=spec.labels)   # doctest: +SKIP
    >>> refined = stage.apply(pixels, yolo_output)                                 # doctest: +SKIP
    >>> refined.problems                                                           # a box whose call failed
    []
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from label_studio_yolo.errors import VlmError
from label_studio_yolo.inference.outputs import Detection, ModelOutput
from label_studio_yolo.label_config import LabelMap
from label_studio_yolo.media.decode import Pixels
from label_studio_yolo.vlm.answers import LabelAnswer, NormalizedBox, VlmAnswerError, parse_boxes, parse_label
from label_studio_yolo.vlm.client import VlmClient
from label_studio_yolo.vlm.images import MIN_CROP_SIDE, encode_jpeg, padded_crop

MAX_REFINED_BOXES = 30
"""YOLO boxes of one task and control that are sent to the model, highest scores first; the others keep YOLO's
label (a crowded image would otherwise cost a call per object)."""

CACHED_ANSWERS = 4096
"""Answers kept per process (a few hundred bytes each)."""

ZERO_SHOT_PROMPT = (
    "Find every object in this image that is one of these labels: {labels}. "
    'Answer with JSON only, no other text: {{"objects": [{{"label": "<one of the labels>", '
    '"box": [x_min, y_min, x_max, y_max], "confidence": <0 to 1>}}]}}. '
    "Coordinates are fractions of the image's width and height, from 0 to 1, with 0, 0 at the top left. "
    'If there is none, answer {{"objects": []}}.'
)
"""The question for boxes on the whole image."""

REFINE_PROMPT = (
    "This image is a crop around one object that a detector took for a {guess}. "
    "Which of these labels is the object in the middle: {labels}? "
    'Answer with JSON only, no other text: {{"label": "<one of the labels, or none>", "confidence": <0 to 1>}}.'
)
"""The question for one box's crop (with a little context around it)."""


class VlmStage(Protocol):
    """What the predictor asks of a stage."""

    needs_yolo: bool
    """Whether it works on YOLO's output (refine) or on the image alone (zero-shot)."""

    def apply(self, image: Pixels, output: ModelOutput) -> StageResult:
        """The control's detections on ``image`` (YOLO's ``output`` for refine)."""
        ...


@dataclass(frozen=True)
class StageResult:
    """A stage's detections, and what went wrong on the way (logged by the predictor with the task's id)."""

    output: ModelOutput
    problems: list[str] = field(default_factory=list)


AnswerKey = tuple[str, str, str]
"""What an answer is cached under: the endpoint and model, the SHA-256 of the image sent, the question."""


def answer_key(client: VlmClient, jpeg: bytes, prompt: str) -> AnswerKey:
    """The cache key of asking ``client``'s model ``prompt`` about ``jpeg`` (another model is another answer)."""
    return (f"{client.config.base_url} {client.config.model}", hashlib.sha256(jpeg).hexdigest(), prompt)


class AnswerCache:
    """Parsed answers by :data:`AnswerKey`, least recently used dropped first."""

    def __init__(self, size: int = CACHED_ANSWERS) -> None:
        self._size = size
        self._answers: OrderedDict[AnswerKey, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: AnswerKey) -> object | None:
        with self._lock:
            if key in self._answers:
                self._answers.move_to_end(key)
            return self._answers.get(key)

    def put(self, key: AnswerKey, answer: object) -> None:
        with self._lock:
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self._size:
                self._answers.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()


ANSWERS = AnswerCache()
"""The process's answer cache, shared by every project (the same image and labels get the same answer)."""


class ZeroShotStage:
    """Boxes of ``labels`` on the whole image, as the model answers them; one call per task."""

    needs_yolo = False

    def __init__(self, client: VlmClient, labels: Sequence[str], cache: AnswerCache = ANSWERS) -> None:
        self.client = client
        self.labels = tuple(labels)
        self.cache = cache

    def apply(self, image: Pixels, output: ModelOutput) -> StageResult:
        """Raises :class:`VlmError` when there is no usable answer (the task then gets no prediction, and Label
        Studio asks for it again next time)."""
        jpeg = encode_jpeg(image, self.client.config.max_image_side)
        prompt = ZERO_SHOT_PROMPT.format(labels=", ".join(self.labels))
        key = answer_key(self.client, jpeg, prompt)
        boxes = cast("list[NormalizedBox] | None", self.cache.get(key))
        if boxes is None:
            answer = self.client.ask(prompt, jpeg)
            try:
                boxes = parse_boxes(answer, self.labels)
            except VlmAnswerError as error:
                raise VlmError(f"unreadable answer: {error}") from error
            self.cache.put(key, boxes)
        detections = [_in_pixels(box, index, output) for index, box in enumerate(boxes)]
        return StageResult(ModelOutput(output.size, detections))


class RefineStage:
    """Each YOLO box the control may take, kept, relabelled or dropped by the model's answer for its crop.

    ``proposes`` are the model classes sent (lower-case; None: every class); ``fallback`` maps a class to the
    label a box keeps when its call fails. The score of a box the model labels is the geometric mean of YOLO's
    score and the model's confidence (YOLO's alone when it gives none).
    """

    needs_yolo = True

    def __init__(
        self,
        client: VlmClient,
        labels: Sequence[str],
        fallback: LabelMap,
        proposes: frozenset[str] | None = None,
        cache: AnswerCache = ANSWERS,
    ) -> None:
        self.client = client
        self.labels = tuple(labels)
        self.fallback = fallback
        self.proposes = proposes
        self.cache = cache

    def apply(self, image: Pixels, output: ModelOutput) -> StageResult:
        proposals = [d for d in output.detections if self.proposes is None or d.class_name.lower() in self.proposes]
        proposals.sort(key=lambda detection: -detection.score)
        sent, kept = proposals[:MAX_REFINED_BOXES], proposals[MAX_REFINED_BOXES:]
        problems = [f"{len(kept)} boxes over {MAX_REFINED_BOXES} keep YOLO's labels"] if kept else []
        answers = self._answers(image, sent)
        detections = [self._fallback(detection) for detection in kept]
        failed: list[str] = []
        for detection, answer in zip(sent, answers, strict=True):
            if isinstance(answer, LabelAnswer):
                detections.append(_relabelled(detection, answer))
            else:
                failed.append(str(answer))
                detections.append(self._fallback(detection))
        if failed:
            problems.append(f"{len(failed)} of {len(sent)} boxes keep YOLO's labels ({failed[0]})")
        refined = [detection for detection in detections if detection is not None]
        return StageResult(replace(output, detections=sorted(refined, key=lambda d: d.index)), problems)

    def _answers(self, image: Pixels, proposals: Sequence[Detection]) -> list[LabelAnswer | Exception]:
        """Each box's answer (cached, or asked now, concurrently) or why there is none."""
        questions = []
        for detection in proposals:
            crop = padded_crop(image, (detection.x0, detection.y0, detection.x1, detection.y1))
            jpeg = encode_jpeg(crop, self.client.config.max_image_side, MIN_CROP_SIDE)
            prompt = REFINE_PROMPT.format(guess=detection.class_name, labels=", ".join(self.labels))
            questions.append((answer_key(self.client, jpeg, prompt), prompt, jpeg))
        answers = [cast("LabelAnswer | Exception | None", self.cache.get(key)) for key, _, _ in questions]
        missing = [index for index, answer in enumerate(answers) if answer is None]
        asked = self.client.ask_all([(questions[i][1], questions[i][2]) for i in missing])
        for index, text in zip(missing, asked, strict=True):
            answers[index] = text if isinstance(text, VlmError) else self._parsed(questions[index][0], text)
        return cast("list[LabelAnswer | Exception]", answers)

    def _parsed(self, key: AnswerKey, text: str) -> LabelAnswer | Exception:
        try:
            answer = parse_label(text, self.labels)
        except VlmAnswerError as error:
            return error
        self.cache.put(key, answer)
        return answer

    def _fallback(self, detection: Detection) -> Detection | None:
        label = self.fallback.label_for(detection.class_name)
        return None if label is None else replace(detection, class_name=label)


def _relabelled(detection: Detection, answer: LabelAnswer) -> Detection | None:
    if answer.label is None:
        return None
    score = detection.score if answer.confidence is None else math.sqrt(detection.score * answer.confidence)
    return replace(detection, class_name=answer.label, score=score)


def _in_pixels(box: NormalizedBox, index: int, output: ModelOutput) -> Detection:
    width, height = output.size.width, output.size.height
    score = 1.0 if box.confidence is None else box.confidence
    return Detection(box.label, score, box.x0 * width, box.y0 * height, box.x1 * width, box.y1 * height, index=index)
