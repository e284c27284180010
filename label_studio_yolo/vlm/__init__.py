"""An optional vision-language stage through any OpenAI-compatible endpoint (vLLM, Ollama, a hosted API).

- **Zero-shot**: the model is asked for boxes of the control's labels on the whole image; the answer becomes the
  same regions as YOLO's (:class:`~label_studio_yolo.vlm.stages.ZeroShotStage`).
- **Refine**: YOLO proposes boxes and the model labels a crop of each with one of the control's labels, keeping,
  relabelling or dropping it (:class:`~label_studio_yolo.vlm.stages.RefineStage`).

A control opts in with ``vlm="zero-shot"`` or ``vlm="refine"`` (else ``VLM_MODE``); see docs/vlm.md.
"""
