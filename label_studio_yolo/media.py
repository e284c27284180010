"""Load the image a task points to: Label Studio uploads, http(s) URLs, ``data:`` URIs and local files.

- ``/data/upload/...`` and other paths relative to Label Studio are fetched from ``LABEL_STUDIO_URL`` (else the
  ``hostname`` that ``/setup`` sent), authenticated with ``LABEL_STUDIO_API_KEY`` (else the ``access_token`` that
  ``/setup`` sent). label-studio-sdk decides how: a legacy key goes as ``Token``, a personal access token is
  exchanged for a short-lived access token and refreshed when it expires.
- ``/data/local-files/?d=<path>`` is read from disk inside ``LOCAL_FILES_DOCUMENT_ROOT`` when that is set (paths
  that escape it are refused), else fetched from Label Studio like an upload.
- Absolute ``http(s)://`` URLs are fetched as they are; credentials go only to Label Studio's own host.
- ``data:`` URIs are decoded by the standard library.

A download must end within ``MEDIA_TIMEOUT`` seconds in all (a server that never answers, or trickles its bytes, is
cut off) and hold at most ``MEDIA_MAX_BYTES`` (a larger declared ``Content-Length`` is refused before reading).
Every failure raises :class:`MediaError` with a reason a person can act on.

Example:
    >>> loader = ImageLoader(MediaSettings(label_studio_url="http://localhost:8080", api_key="..."))
    >>> loader.load("/data/upload/1/0f3a-cat.jpg").size              # doctest: +SKIP
    (640, 480)
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
import urllib3
from PIL import Image

from label_studio_yolo.decoding import MediaError, Pixels, decode_image, decode_pixels

__all__ = ["CLOUD_SCHEMES", "LOCAL_FILES_PREFIX", "ImageLoader", "MediaError", "MediaSettings"]

logger = logging.getLogger(__name__)

LOCAL_FILES_PREFIX = "/data/local-files/"
"""Path under which Label Studio serves files of its local-files storage (``?d=<relative path>``)."""

CLOUD_SCHEMES = ("s3://", "gs://", "azure-blob://", "azure-spi://")
"""Storage URIs Label Studio must presign; not supported yet."""


@dataclass(frozen=True)
class MediaSettings:
    """Where images come from and how they are fetched."""

    label_studio_url: str | None = None
    api_key: str | None = None
    document_root: Path | None = None
    timeout: float = 15.0
    max_bytes: int = 50 * 1024 * 1024


class ImageLoader:
    """Loads task images as RGB PIL images, oriented as Label Studio shows them (EXIF rotation applied)."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self._session = requests.Session()
        self._sdk_client: object | None = None
        self._sdk_lock = threading.Lock()

    def load(self, value: object) -> Image.Image:
        """The image at ``value`` (a task-data string) as a Pillow image."""
        return decode_image(self.read_bytes(value))

    def load_pixels(self, value: object) -> Pixels:
        """The image at ``value`` as the BGR array inference takes."""
        return decode_pixels(self.read_bytes(value))

    def read_bytes(self, value: object) -> bytes:
        """The raw bytes ``value`` (a task-data string) points to."""
        value = _location(value)
        if value.startswith("data:"):
            return self._read_data_uri(value)
        if value.startswith(CLOUD_SCHEMES):
            raise MediaError(f"Cloud storage URI {value[:60]!r} is not supported; import images by upload or URL")
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            if (
                parts.path.startswith(LOCAL_FILES_PREFIX)
                and self._is_label_studio(value)
                and self.settings.document_root
            ):
                return self._read_local_file(parts.query)
            return self._http_get(value, authenticated=self._is_label_studio(value))
        if parts.scheme or not value.startswith("/"):
            raise MediaError(f"Unsupported image location {value[:80]!r}: expected http(s), data: or a /data/ path")
        if parts.path.startswith(LOCAL_FILES_PREFIX) and self.settings.document_root:
            return self._read_local_file(parts.query)
        return self._http_get(self._label_studio_url(value), authenticated=True)

    def _read_data_uri(self, value: str) -> bytes:
        try:
            with urllib.request.urlopen(value) as response:  # noqa: S310 - only data: URIs reach here
                data: bytes = response.read(self.settings.max_bytes + 1)
        except (ValueError, OSError) as error:
            raise MediaError(f"Malformed data: URI ({error})") from error
        return self._within_limit(data, "data: URI")

    def _read_local_file(self, query: str) -> bytes:
        root = self.settings.document_root
        assert root is not None
        relative = parse_qs(query).get("d", [""])[0]  # parse_qs decodes once, as Label Studio does
        if not relative:
            raise MediaError("Local-files URL has no ?d=<path>")
        shown = _shortened(repr(relative))
        try:
            base = root.expanduser().resolve()
            path = (base / relative.lstrip("/")).resolve()
            if not path.is_relative_to(base):
                raise MediaError(f"Local file {shown} is outside LOCAL_FILES_DOCUMENT_ROOT ({base}); refused")
            if not path.is_file():
                raise MediaError(f"Local file {path} does not exist")
            if path.stat().st_size > self.settings.max_bytes:
                raise MediaError(f"Local file {path} is larger than MEDIA_MAX_BYTES ({self.settings.max_bytes})")
            return path.read_bytes()
        except (OSError, ValueError) as error:  # no permission, a NUL byte or an over-long name in the path
            raise MediaError(f"Local file {shown} could not be read ({error})") from error

    def _label_studio_url(self, path: str) -> str:
        if not self.settings.label_studio_url:
            raise MediaError(
                f"Task image {path!r} is stored in Label Studio, but its URL is unknown: set LABEL_STUDIO_URL"
            )
        return urljoin(self.settings.label_studio_url.rstrip("/") + "/", path.lstrip("/"))

    def _is_label_studio(self, url: str) -> bool:
        base = self.settings.label_studio_url
        return bool(base) and urlsplit(url).netloc == urlsplit(base).netloc

    def _http_get(self, url: str, authenticated: bool) -> bytes:
        """The body at ``url``, within ``MEDIA_TIMEOUT`` in all (not per read: a trickling server is cut off too)."""
        headers = {"Authorization": self._authorization()} if authenticated and self.settings.api_key else {}
        timeout, shown = self.settings.timeout, _shortened(url)
        deadline = time.monotonic() + timeout
        try:
            with self._session.get(url, headers=headers, timeout=timeout, stream=True) as response:
                _check_status(response, shown, authenticated)
                _check_declared_length(response, shown, self.settings.max_bytes)
                data = _read_body(response, self.settings.max_bytes, deadline)
        except MediaError:
            raise
        except (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError) as error:
            raise MediaError(f"Could not download {shown}: timed out after {timeout:g} s (MEDIA_TIMEOUT)") from error
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            raise MediaError(f"Could not download {shown}: {_shortened(str(error), 300)}") from error
        return self._within_limit(data, url)

    def _authorization(self) -> str:
        """The Authorization header label-studio-sdk builds for the configured key (refreshing a PAT)."""
        with self._sdk_lock:
            if self._sdk_client is None:
                from label_studio_sdk.client import LabelStudio

                self._sdk_client = LabelStudio(  # type: ignore[no-untyped-call]
                    base_url=self.settings.label_studio_url or "", api_key=self.settings.api_key or ""
                )
        try:
            # The SDK has no public call that downloads /data/upload files; its client wrapper's headers are
            # the one place that knows legacy keys from PATs and refreshes access tokens.
            headers: dict[str, str] = self._sdk_client._client_wrapper.get_headers()  # type: ignore[attr-defined]
        except Exception as error:  # a PAT refresh answers with ApiError or a connection error
            raise MediaError(f"Could not authenticate to Label Studio with LABEL_STUDIO_API_KEY: {error}") from error
        return headers["Authorization"]

    def _within_limit(self, data: bytes, source: str) -> bytes:
        if len(data) > self.settings.max_bytes:
            raise MediaError(f"{_shortened(source)} is larger than MEDIA_MAX_BYTES ({self.settings.max_bytes} bytes)")
        return data


def _check_status(response: requests.Response, shown: str, authenticated: bool) -> None:
    """Raise :class:`MediaError` for an error status, saying what to do about a refusal."""
    status = response.status_code
    if status < 400:
        return
    reason = f"HTTP {status} ({response.reason})" if response.reason else f"HTTP {status}"
    if status in (401, 403) and authenticated:
        raise MediaError(
            f"{reason} for {shown}: Label Studio refused the credentials; set LABEL_STUDIO_API_KEY to a valid "
            "legacy token or personal access token"
        )
    if status in (401, 403):
        raise MediaError(
            f"Could not download {shown}: {reason}; credentials are sent only to Label Studio's own host "
            "(LABEL_STUDIO_URL), so this image must be readable without them"
        )
    raise MediaError(f"Could not download {shown}: {reason}")


def _check_declared_length(response: requests.Response, shown: str, max_bytes: int) -> None:
    """Refuse an answer whose ``Content-Length`` is over ``max_bytes`` before reading any of it."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise MediaError(f"{shown} is {declared} bytes, larger than MEDIA_MAX_BYTES ({max_bytes} bytes)")


def _read_body(response: requests.Response, max_bytes: int, deadline: float) -> bytes:
    """The body, read as it arrives; stops one chunk past ``max_bytes`` (oversized answers are not read whole).

    Raises:
        TimeoutError: ``deadline`` (a :func:`time.monotonic` time) passed before the body ended.
    """
    chunks, total = [], 0
    while chunk := response.raw.read1(1 << 16, decode_content=True):  # returns what arrived, not a full chunk
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            break
        if time.monotonic() > deadline:
            raise TimeoutError
    return b"".join(chunks)


def _shortened(text: str, limit: int = 120) -> str:
    """``text`` cut to about ``limit`` characters for a log line (a task URL can be a megabyte long); its start and
    end are kept (a URL's host and file name, an error's cause)."""
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...({len(text)} characters)...{text[-limit // 2 :]}"


def _location(value: object) -> str:
    """``value`` as an image location, or :class:`MediaError` for anything that cannot be one."""
    if not isinstance(value, str) or not value.strip():
        raise MediaError(f"Task data value {_shortened(repr(value), 80)} is not an image URL or path")
    return value.strip()
