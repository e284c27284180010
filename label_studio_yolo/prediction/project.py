"""Build the predictor of one Label Studio project: its weights, its config's controls and where its images come from.

The backend (``model.py``) and the bulk command line (:mod:`label_studio_yolo.bulk`) both predict through this,
so a task gets the same regions and the same model version whichever way it is predicted.

Example:
    >>> predictor = build_project_predictor(config, project_id=3, settings=BackendSettings())   # doctest: +SKIP
    >>> predictor.model_version
    'yolo11n-5b3a2f0c'
"""

from __future__ import annotations

import logging
from dataclasses import replace

from label_studio_yolo.credentials import LabelStudioAccess
from label_studio_yolo.errors import LabelConfigError, WeightsError
from label_studio_yolo.inference.runtimes import Runtime, runtime_for
from label_studio_yolo.inference.weights import LoadedWeights, load_weights, load_weights_file
from label_studio_yolo.label_config import MODEL_PATH_ATTR, ControlSpec, parse_label_config, with_own_labels
from label_studio_yolo.logsafe import printable
from label_studio_yolo.media.loader import MediaSettings, shared_loader
from label_studio_yolo.prediction.tasks import TaskPredictor
from label_studio_yolo.settings import VLM_ATTR, VLM_AUTO, VLM_OFF, VLM_ZERO_SHOT, BackendSettings
from label_studio_yolo.tags import Control, ObjectControl, control_for, supported_controls
from label_studio_yolo.versions import VersionStore
from label_studio_yolo.vlm.client import VlmConfig, vlm_client, vlm_config
from label_studio_yolo.vlm.stages import RefineStage, ZeroShotStage

logger = logging.getLogger(__name__)


def build_project_predictor(
    label_config: str,
    project_id: int | None,
    settings: BackendSettings,
    label_studio: LabelStudioAccess | None = None,
    background_export: bool = False,
) -> TaskPredictor:
    """The predictor for ``project_id``: its published version (else ``MODEL_PATH``) mapped onto ``label_config``.

    A control the published version did not learn from keeps ``MODEL_PATH`` with its ``predicted_values``, so a
    publish never takes another tag's predictions away; one with ``model_path`` keeps its own weights.

    Weights are cached per process. A version trained here has the project's labels as its classes. Images stored
    in Label Studio are fetched from ``label_studio`` (see :mod:`label_studio_yolo.credentials`), else from
    ``LABEL_STUDIO_URL`` with ``LABEL_STUDIO_API_KEY``. ``background_export`` makes a missing OpenVINO export in a
    child process and returns at once (so ``/setup`` answers in time); predictions wait for the export.

    Raises:
        WeightsError: a weight file is missing and cannot be downloaded, or is not a YOLO model.
        LabelConfigError: the config has no control this backend can fill.
    """
    runtime = replace(runtime_for(settings), background_export=background_export)
    version = VersionStore(settings.model_dir).current(project_id) if project_id is not None else None
    specs = parse_label_config(label_config, settings.model_score_threshold, supported_controls())
    base: list[LoadedWeights] = []

    def base_weights() -> LoadedWeights:  # loaded once, and only when a control needs it
        if not base:
            base.append(load_weights(settings.model_root, settings.model_path, runtime, download=True))
        return base[0]

    trained = load_weights_file(version.weights, runtime, version=version.name) if version is not None else None
    controls = []
    for spec in specs:
        if spec.model_path is not None:
            controls.append(control_for(spec, _tag_weights(spec, settings, runtime)))
        elif version is not None and trained is not None and _learnt_by(version.meta, spec):
            controls.append(control_for(with_own_labels(spec), trained))
        else:
            controls.append(control_for(spec, base_weights()))
    vlm = vlm_config(settings)
    controls = _usable([with_vlm_stage(control, settings.vlm_mode, vlm) for control in controls])
    versions = [control.weights.version for control in controls]
    if vlm is not None and any(control.vlm is not None for control in controls):
        versions.append(vlm.version_tag)  # the model's answers change the predictions
    label_studio = label_studio or LabelStudioAccess(settings.label_studio_url, settings.label_studio_api_key)
    media = MediaSettings.from_settings(settings, label_studio.url, label_studio.api_key, label_studio.from_setup)
    return TaskPredictor(
        model_version="+".join(dict.fromkeys(versions)),
        controls=controls,
        loader=shared_loader(media),
        imgsz=settings.model_imgsz,
        threads=settings.torch_threads,
        lanes=runtime.lanes,
    )


def _learnt_by(meta: dict[str, object], spec: ControlSpec) -> bool:
    """Whether the version of ``meta`` learnt the control ``spec``: its classes are that tag's labels. A version
    that does not list its controls (made before they were recorded) learnt every one."""
    trained = meta.get("trained_controls")
    return not isinstance(trained, list) or spec.from_name in trained


def _tag_weights(spec: ControlSpec, settings: BackendSettings, runtime: Runtime) -> LoadedWeights:
    """The tag's own ``model_path`` weights (inside MODEL_ROOT).

    Raises:
        LabelConfigError: the file is not in MODEL_ROOT or is not YOLO weights. The message names the tag and no path
            of this machine (whoever edits a config reads it); the log has the full reason.
    """
    assert spec.model_path is not None
    tag = f'<{spec.control_type} name="{printable(spec.from_name)}">'
    try:
        return load_weights(settings.model_root, spec.model_path, runtime)  # a config never downloads
    except WeightsError as error:
        logger.warning("%s: %s", tag, error)
        raise LabelConfigError(
            f'{tag} has {MODEL_PATH_ATTR}="{printable(spec.model_path)}", which is not a YOLO weight file '
            f"in MODEL_ROOT (nothing is downloaded for a tag; the backend's log says more). Ask whoever runs the "
            f"backend to put it there, or remove {MODEL_PATH_ATTR} to use the project's model."
        ) from error


def with_vlm_stage(control: Control, default_mode: str, vlm: VlmConfig | None) -> Control:
    """``control``, or the same tag filled through the vision-language endpoint ``vlm`` when its ``vlm`` attribute
    (else ``default_mode``, VLM_MODE) asks for one: ``zero-shot`` boxes on the image, ``refine`` of YOLO's boxes, or
    with ``auto`` zero-shot for a ``<RectangleLabels>`` none of whose labels maps a class of the model (when an
    endpoint is set).

    Raises:
        LabelConfigError: a stage is asked for but no endpoint is set, or the tag cannot take that stage.
    """
    spec, mode = control.spec, _vlm_mode(control, default_mode, vlm)
    if mode == VLM_OFF:
        return control
    config = _vlm_config_for(control, mode, vlm)
    staged = control_for(with_own_labels(spec), control.weights)  # the model answers with the labels themselves
    client = vlm_client(config)
    if mode == VLM_ZERO_SHOT:
        staged.vlm = ZeroShotStage(client, spec.label_names)
    else:
        staged.vlm = RefineStage(
            client, spec.label_names, fallback=spec.labels, proposes=spec.predicted_classes or None
        )
    return staged


def _vlm_mode(control: Control, default_mode: str, vlm: VlmConfig | None) -> str:
    """``zero-shot``, ``refine`` or ``off`` for ``control``, ``auto`` resolved."""
    spec = control.spec
    mode = spec.vlm_mode or default_mode
    if mode != VLM_AUTO:
        return mode
    if vlm is None or spec.control_type != "RectangleLabels" or control.maps_a_class():
        return VLM_OFF
    logger.info(
        "<%s name=%r>: no label maps a class of the model; the vision-language model fills it zero-shot",
        spec.control_type,
        spec.from_name,
    )
    return VLM_ZERO_SHOT


def _vlm_config_for(control: Control, mode: str, config: VlmConfig | None) -> VlmConfig:
    """The endpoint for ``control``'s stage ``mode``; :class:`LabelConfigError`, with XML that works, when none is
    set or the tag cannot take that stage."""
    spec = control.spec
    tag = f'<{spec.control_type} name="{spec.from_name}" toName="{spec.to_name}" {VLM_ATTR}="{mode}">'
    if config is None:
        raise LabelConfigError(
            f"{tag} asks for a vision-language model, but none is set: set VLM_BASE_URL and "
            "VLM_MODEL (see docs/vlm.md)."
        )
    if mode == VLM_ZERO_SHOT and spec.control_type != "RectangleLabels":
        raise LabelConfigError(
            f"{tag}: zero-shot gives boxes, so it fills <RectangleLabels> only, e.g. "
            f'<RectangleLabels name="{spec.from_name}" toName="{spec.to_name}" {VLM_ATTR}="zero-shot">; '
            f'{VLM_ATTR}="refine" relabels the objects of other tags.'
        )
    if not isinstance(control, ObjectControl):
        raise LabelConfigError(
            f"{tag}: refine relabels objects, so it fills <RectangleLabels>, <PolygonLabels> or <BrushLabels>."
        )
    return config


def _usable(controls: list[Control]) -> list[Control]:
    """The controls their weights can fill; the others are skipped with a logged reason.

    Raises:
        LabelConfigError: no control can be filled (the message gives each reason, with XML that would work).
    """
    problems = [(control, control.unusable_reason()) for control in controls]
    for control, problem in problems:
        if problem:
            spec = control.spec
            logger.warning("Skipping <%s name=%r>: %s", spec.control_type, spec.from_name, printable(problem, 500))
    usable = [control for control, problem in problems if not problem]
    if not usable:
        raise LabelConfigError("No control of the config can be filled. " + " ".join(str(p) for _, p in problems))
    return usable
