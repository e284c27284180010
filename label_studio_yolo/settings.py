"""Backend settings, read from the environment (and a ``.env`` file) with pydantic-settings.

A labelling config can override some of them per control tag (``model_score_threshold``); those attributes are
read in :mod:`label_studio_yolo.label_config`, with these values as the fallback.

Example:
    >>> BackendSettings(model_score_threshold=0.3).model_score_threshold
    0.3
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from label_studio_yolo.allowed_hosts import HostPolicy
from label_studio_yolo.cpus import available_cpus
from label_studio_yolo.label_studio_url import LabelStudioURL, NotAURL

PYTORCH, OPENVINO = "pytorch", "openvino"
RUNTIMES = (PYTORCH, OPENVINO)
"""Values of the ``INFERENCE_RUNTIME`` setting."""

PRECISIONS = ("f32", "bf16")
"""Values of the ``OPENVINO_PRECISION`` setting (OpenVINO's ``INFERENCE_PRECISION_HINT``)."""

DEFAULT_STATIC_SHAPES = 2
"""Fixed-shape OpenVINO networks per network family at most, when ``OPENVINO_STATIC_SHAPES`` is unset: a camera's
photos standing and lying (docs/performance.md has their memory)."""

VLM_ATTR = "vlm"
"""Control-tag attribute choosing the vision-language stage: ``zero-shot``, ``refine`` or ``off`` (else VLM_MODE)."""

VLM_ZERO_SHOT, VLM_REFINE, VLM_OFF, VLM_AUTO = "zero-shot", "refine", "off", "auto"

VLM_TAG_MODES = (VLM_ZERO_SHOT, VLM_REFINE, VLM_OFF)
"""Values of the ``vlm`` attribute."""

VLM_SETTING_MODES = (VLM_AUTO, *VLM_TAG_MODES)
"""Values of the ``VLM_MODE`` setting: ``auto`` fills zero-shot the boxes of a control no YOLO class maps to."""

DEFAULT_MAX_PIXELS = 100_000_000
"""100 megapixels: room for every camera photo. Larger images are refused from their header, before any pixel is
decoded."""

DEFAULT_ALLOWED_HOSTS = "public"
"""Task URLs may point anywhere on the public internet, and to Label Studio; not to private, loopback or link-local
addresses (the backend's own network: cloud metadata services, Redis, admin pages), whatever the URL's spelling."""

DEFAULT_DECODE_BYTES = 1024**3
"""1 GiB: one 100 Mpx JPEG, PNG or WebP (about 700 MB), or a 48 Mpx phone HEIC, decodes alone; a 1,975-byte AVIF of
9999 x 9999 took 1.8 GiB, four large PNGs at once 2.1 GiB."""

DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024
"""100 MiB: room for one task whose inline ``data:`` image is as large as MEDIA_MAX_BYTES allows (in base64), and
far more tasks with image URLs than one /predict gets through in time."""


REQUEST_BUFFERS = 4
"""Request bodies of the largest size one server process holds at once by default (REQUEST_BUFFER_BYTES): 20
uploads of 99 MiB held 1.94 GiB of the temporary folder before."""


class BackendSettings(BaseSettings):
    """Every setting of the backend; each field is the upper-case environment variable of the same name."""

    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore", protected_namespaces=())

    model_root: Path = Field(Path("models"), description="Folder that holds weight files; MODEL_PATH resolves here.")
    model_path: str = Field("yolo11n.pt", description="Weight file, relative to MODEL_ROOT.")
    model_score_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Minimum confidence of a region, unless the control tag sets its own."
    )
    model_imgsz: int | None = Field(
        None, gt=0, description="Inference image size; unset uses the size the weights were trained at."
    )
    device: str = Field("cpu", description="Torch device for inference: cpu, cuda, cuda:0, mps.")
    inference_runtime: str = Field(
        OPENVINO,
        pattern=f"^({'|'.join(RUNTIMES)})$",
        description="openvino (on the CPU: exported once per weight file; another device or a failed export falls "
        "back to pytorch) or pytorch.",
    )
    openvino_precision: str = Field(
        "f32",
        pattern=f"^({'|'.join(PRECISIONS)})$",
        description="f32 (PyTorch's boxes) or bf16 (faster on CPUs with bfloat16, boxes within about a pixel).",
    )
    openvino_static_shapes: int = Field(
        DEFAULT_STATIC_SHAPES,
        ge=0,
        description="Input shapes (after letterboxing) that OpenVINO compiles a fixed-shape network for, per network "
        "family (single tasks; the lanes of batches): the first ones met. The same outputs as the dynamic network, "
        "faster, for some memory each; other shapes run on the dynamic network, compiled when the first of them "
        "comes. 0: dynamic only.",
    )
    torch_threads: int = Field(
        default_factory=available_cpus,
        gt=0,
        description="CPU threads of inference per process, torch and OpenVINO (default: the cores this process may "
        "use, capped by a container's CPU quota).",
    )
    inference_lanes: int | None = Field(
        None,
        gt=0,
        description="Tasks of one /predict batch predicted at once, each lane with its own predictor and "
        "TORCH_THREADS / lanes threads (default: 2 on a CPU with 2 or more threads, else 1).",
    )
    predict_time_budget: float = Field(
        90.0,
        ge=0,
        description="Seconds one /predict may spend (Label Studio gives up after 100 s); tasks whose turn comes later "
        "get no prediction and are asked for again next time. 0: no limit.",
    )
    label_studio_url: str | None = Field(
        None, description="Base URL of Label Studio for /data/upload/ images; else the hostname /setup sends."
    )
    label_studio_api_key: str | None = Field(
        None, description="Legacy token or personal access token; else the access_token /setup sends."
    )
    local_files_document_root: Path | None = Field(
        None, description="Folder that /data/local-files/?d=... paths may be read from; unset refuses them."
    )
    media_timeout: float = Field(
        15.0, gt=0, description="Seconds one image or video may take to download, in all (not per read)."
    )
    media_max_bytes: int = Field(
        50 * 1024 * 1024, gt=0, description="Largest image or video (bytes) the backend accepts, in every encoding."
    )
    media_max_pixels: int = Field(
        DEFAULT_MAX_PIXELS, gt=0, description="Largest image (width x height) decoded; checked from its header."
    )
    media_decode_bytes: int = Field(
        DEFAULT_DECODE_BYTES,
        gt=0,
        description="Memory (bytes) one process may spend decoding images at once; an image waits up to 30 s for its "
        "share, and one that alone needs more is refused with the reason. About 7 bytes a pixel for JPEG, PNG and "
        "WebP, 15 for TIFF, BMP and GIF, 21 for AVIF and HEIC.",
    )
    media_allowed_hosts: str = Field(
        DEFAULT_ALLOWED_HOSTS,
        description="Hosts task URLs may be downloaded from, comma-separated: 'public' (any address on the public "
        "internet), '*' (any), host names ('*.example.com' too), IP addresses and networks (10.0.0.0/8). Label "
        "Studio's own address is always allowed.",
    )
    log_level: str = Field("INFO", description="Python logging level of the backend.")
    basic_auth_pass: SecretStr | None = Field(None, description="HTTP Basic auth password (with BASIC_AUTH_USER).")
    basic_auth_user: str | None = Field(
        None,
        validate_default=True,  # checked even when unset: BASIC_AUTH_PASS alone is an error too
        description="HTTP Basic auth user that every request must send (with BASIC_AUTH_PASS); unset: no auth.",
    )
    max_request_bytes: int = Field(
        DEFAULT_MAX_REQUEST_BYTES, gt=0, description="Largest request body (bytes); larger ones get 413."
    )
    request_buffer_bytes: int | None = Field(
        None,
        gt=0,
        description="Bytes of request bodies one server process holds at once (arriving, waiting for a thread or "
        "being answered); a request past it gets 503 with Retry-After. Default: 4 x MAX_REQUEST_BYTES.",
    )
    threads: int = Field(16, gt=0, description="Request threads per server process (the front's pool).")
    request_body_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a request body may take to arrive after its headers; a slower one gets 408 (Label Studio "
        "gives a whole /predict 100 s).",
    )
    request_header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a new connection may take to send its request line and headers; a slower one is closed.",
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Largest request line and headers together (bytes); larger ones get 431 and the connection closed.",
    )
    max_connections: int = Field(
        1000,
        gt=0,
        description="Connections one server process holds at once (lowered to fit its open-file limit); at the cap, "
        "the one waiting longest for its headers is closed, or a new one gets 503 when every one is in a request.",
    )

    vlm_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint of a vision-language model, e.g. http://vllm:8000/v1."
    )
    vlm_api_key: SecretStr | None = Field(None, description="API key of that endpoint (never logged).")
    vlm_model: str | None = Field(None, description="Model name the endpoint serves, e.g. Qwen/Qwen2-VL-7B-Instruct.")
    vlm_mode: str = Field(
        VLM_AUTO,
        pattern=f"^({'|'.join(VLM_SETTING_MODES)})$",
        description="For control tags without a vlm attribute: auto (zero-shot where no label maps a YOLO class), "
        "off, refine or zero-shot.",
    )
    vlm_timeout: float = Field(30.0, gt=0, description="Seconds one question to the model may take.")
    vlm_concurrency: int = Field(4, gt=0, description="Questions asked at once per process.")
    vlm_max_image_side: int = Field(1024, gt=0, description="Long side (pixels) of the images sent, at most.")
    vlm_max_retries: int = Field(1, ge=0, description="Retries of a question that timed out or got a 5xx/429.")

    redis_url: str | None = Field(None, description="Redis for the training queue; unset trains in a local process.")
    training_queue: str = Field("training", description="rq queue that training jobs go to.")
    model_dir: Path = Field(Path("data/model-versions"), description="Trained versions: MODEL_DIR/<project>/<version>.")
    train_min_new_annotations: int = Field(
        10, ge=1, description="Annotation events that start training (Start Training always does)."
    )
    train_epochs: int | None = Field(
        None, gt=0, description="Fine-tuning epochs per job; unset: from the data's size (about 80 optimizer steps)."
    )
    train_imgsz: int | None = Field(
        None, gt=0, description="Training image size; unset: the size the starting weights were trained at (else 640)."
    )
    train_batch: int = Field(4, gt=0, description="Training batch size (each batch is one optimizer step).")
    train_freeze: int | None = Field(
        None, ge=0, description="Leading layers kept frozen while fine-tuning; unset: the model's backbone."
    )
    train_lr: float = Field(0.001, gt=0.0, description="AdamW learning rate of fine-tuning.")
    train_distill: float = Field(
        0.3,
        ge=0.0,
        description="Weight of the served model's scores for the labels it already predicts, beside the annotations "
        "(0: learn from the annotations alone).",
    )
    train_device: str = Field("cpu", description="Torch device for training.")
    train_val_fraction: float = Field(
        0.25, gt=0.0, lt=1.0, description="Share of annotated tasks kept for validation (at most half)."
    )
    train_min_val_images: int = Field(4, ge=1, description="Val images the gate needs to publish a version.")
    train_gate_min_objects: int = Field(
        3, ge=1, description="Val objects (classify: images) each already-predicted label needs to be judged."
    )
    train_gate_tolerance: float = Field(
        0.05,
        ge=0.0,
        le=1.0,
        description="Least drop of a label's AP50 that refuses a version (more with few val objects).",
    )
    train_publish_policy: str = Field(
        "not_worse",
        pattern="^(not_worse|always)$",
        description="Publish a version only if the gate passes it (no label it predicted dropped, better overall), "
        "or always.",
    )
    train_job_timeout: int = Field(6 * 3600, gt=0, description="Seconds a training job may run before rq stops it.")

    @field_validator("basic_auth_user")
    @classmethod
    def _basic_auth_is_complete(cls, user: str | None, info: ValidationInfo) -> str | None:
        """Half a credential pair stops the backend rather than serving without a password.

        A field validator after BASIC_AUTH_PASS (declared first), not a model validator: pydantic's message for a
        model validator repeats every input, the password with them.
        """
        if (user is None) != (info.data.get("basic_auth_pass") is None):
            missing = "BASIC_AUTH_USER" if user is None else "BASIC_AUTH_PASS"
            raise ValueError(
                f"{missing} is not set: set both BASIC_AUTH_USER and BASIC_AUTH_PASS to require HTTP Basic auth, "
                "or neither to serve without it"
            )
        if user is not None and ":" in user:
            raise ValueError("BASIC_AUTH_USER must not contain ':' (HTTP Basic auth splits user and password there)")
        return user

    @field_validator("media_allowed_hosts")
    @classmethod
    def _allowed_hosts_parse(cls, text: str) -> str:
        HostPolicy.parse(text)  # a typo stops the backend at start, with the entry named
        return text

    @field_validator("label_studio_url")
    @classmethod
    def _label_studio_url_is_a_url(cls, url: str | None) -> str | None:
        if url is not None:
            try:
                LabelStudioURL(url)
            except NotAURL as error:
                raise ValueError(f"LABEL_STUDIO_URL must be Label Studio's http(s) base URL: {error}") from error
        return url

    @field_validator("request_buffer_bytes")
    @classmethod
    def _buffer_holds_a_request(cls, value: int | None, info: ValidationInfo) -> int | None:
        largest = info.data.get("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES)
        if value is not None and value < largest:
            raise ValueError(
                f"REQUEST_BUFFER_BYTES ({value}) must be at least MAX_REQUEST_BYTES ({largest}), or no request of "
                "the largest size could ever be served"
            )
        return value

    @property
    def buffer_budget(self) -> int:
        """REQUEST_BUFFER_BYTES, else :data:`REQUEST_BUFFERS` times MAX_REQUEST_BYTES."""
        return self.request_buffer_bytes or REQUEST_BUFFERS * self.max_request_bytes

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """The user and password that every request must send; None when auth is off."""
        if self.basic_auth_user is None or self.basic_auth_pass is None:
            return None
        return self.basic_auth_user, self.basic_auth_pass.get_secret_value()


ENV_FILE = Path(".env")
"""The dotenv file read beside the environment (relative to the working directory, as pydantic-settings reads it)."""

_current: tuple[tuple[object, ...], BackendSettings] | None = None
_current_lock = threading.Lock()


def current_settings() -> BackendSettings:
    """The settings as the environment and ``.env`` say now, read again only when either has changed (a server asks
    on every request, and a changed variable or ``.env`` must still take effect)."""
    global _current
    key = (tuple(sorted(os.environ.items())), _file_stamp(ENV_FILE))
    with _current_lock:
        if _current is None or _current[0] != key:
            _current = (key, BackendSettings())
        return _current[1]


def _file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)
