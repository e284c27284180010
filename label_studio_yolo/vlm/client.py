"""Ask an OpenAI-compatible chat endpoint about an image, a bounded number of questions at a time.

One :class:`VlmClient` per endpoint and process (:func:`vlm_client`): its limit on concurrent questions holds for
every lane and request together. The official ``openai`` client does the HTTP; its errors become
:class:`VlmError` with a reason a person can act on. The API key is sent as ``Authorization: Bearer`` by that
client and never appears in a message or log line of this backend.

Example:
    >>> client = vlm_client(VlmConfig("http://localhost:8000/v1", "", "Qwen/Qwen2-VL-7B-Instruct"))  # doctest: +SKIP
    >>> client.ask("What is this? Answer with JSON.", jpeg)                                       # doctest: +SKIP
    '{"label": "Drone", "confidence": 0.8}'
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from label_studio_yolo.errors import VlmError
from label_studio_yolo.logsafe import text_shown
from label_studio_yolo.settings import BackendSettings

PLACEHOLDER_API_KEY = "EMPTY"
"""Sent when no key is set: self-hosted servers (vLLM, Ollama) take any, and the ``openai`` client needs one."""

MAX_ANSWER_TOKENS = 1024
"""Tokens an answer may take; a longer answer is cut and read up to its last whole box."""


@dataclass(frozen=True)
class VlmConfig:
    """Where the model is and how to ask it (the ``VLM_*`` settings)."""

    base_url: str
    api_key: str = field(repr=False)
    model: str
    timeout: float = 30.0
    concurrency: int = 4
    max_image_side: int = 1024
    max_retries: int = 1

    @property
    def version_tag(self) -> str:
        """The model's name as it goes into the model version Label Studio stores (no commas: it splits on them)."""
        return "vlm-" + "".join(c if c.isalnum() or c in "._-" else "-" for c in self.model).strip("-")


class VlmClient:
    """Chat completions with an image for one endpoint, at most ``concurrency`` at a time."""

    def __init__(self, config: VlmConfig) -> None:
        from openai import OpenAI

        self.config = config
        self._client = OpenAI(
            base_url=config.base_url,
            api_key=config.api_key or PLACEHOLDER_API_KEY,
            timeout=config.timeout,
            max_retries=config.max_retries,
        )
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=config.concurrency, thread_name_prefix="vlm")

    def ask(self, prompt: str, jpeg: bytes) -> str:
        """The model's answer to ``prompt`` about the JPEG image ``jpeg``.

        Raises:
            VlmError: a timeout, an HTTP error, no connection, or an empty answer.
        """
        import openai

        from label_studio_yolo.vlm.images import data_url  # numpy: not imported with the settings

        content: list[dict[str, Any]] = [
            {"type": "text", "text": prompt},
            {"type": "image_url", "image_url": {"url": data_url(jpeg)}},
        ]
        with self._slots:
            try:
                response = self._client.chat.completions.create(
                    model=self.config.model,
                    messages=[{"role": "user", "content": content}],  # type: ignore[misc, list-item]
                    temperature=0,
                    max_tokens=MAX_ANSWER_TOKENS,
                )
            except openai.APITimeoutError as error:
                raise VlmError(f"no answer from {self.config.base_url} within {self.config.timeout:g} s") from error
            except openai.APIStatusError as error:
                raise VlmError(
                    f"{self.config.base_url} answered HTTP {error.status_code}: {text_shown(str(error), 200)}"
                ) from error
            except openai.APIError as error:
                raise VlmError(f"could not ask {self.config.base_url}: {text_shown(str(error), 200)}") from error
        text = response.choices[0].message.content if response.choices else None
        if not text:
            raise VlmError(f"{self.config.base_url} gave an empty answer")
        return str(text)

    def ask_all(self, questions: Sequence[tuple[str, bytes]]) -> list[str | VlmError]:
        """Each question's answer, or its error, in order; asked concurrently within the limit."""
        futures = [self._pool.submit(self.ask, prompt, jpeg) for prompt, jpeg in questions]
        answers: list[str | VlmError] = []
        for future in futures:
            try:
                answers.append(future.result())
            except VlmError as error:
                answers.append(error)
        return answers


_clients: dict[VlmConfig, VlmClient] = {}
_clients_lock = threading.Lock()


def vlm_config(settings: BackendSettings) -> VlmConfig | None:
    """The vision-language endpoint the settings name, or None when VLM_BASE_URL or VLM_MODEL is unset."""
    if not settings.vlm_base_url or not settings.vlm_model:
        return None
    key = settings.vlm_api_key.get_secret_value() if settings.vlm_api_key else ""
    return VlmConfig(
        base_url=settings.vlm_base_url,
        api_key=key,
        model=settings.vlm_model,
        timeout=settings.vlm_timeout,
        concurrency=settings.vlm_concurrency,
        max_image_side=settings.vlm_max_image_side,
        max_retries=settings.vlm_max_retries,
    )


def vlm_client(config: VlmConfig) -> VlmClient:
    """The process's client for ``config`` (one limit on concurrent questions per endpoint and process)."""
    with _clients_lock:
        if config not in _clients:
            _clients[config] = VlmClient(config)
        return _clients[config]
