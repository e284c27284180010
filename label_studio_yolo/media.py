"""Load the image a task points to: Label Studio uploads, http(s) URLs, ``data:`` URIs and local files.

- ``/data/upload/...`` and other paths relative to Label Studio are fetched from ``LABEL_STUDIO_URL`` (else the
  ``hostname`` that ``/setup`` sent), authenticated with ``LABEL_STUDIO_API_KEY`` (else the ``access_token`` that
  ``/setup`` sent). label-studio-sdk decides how: a legacy key goes as ``Token``, a personal access token is
  exchanged for a short-lived access token and refreshed when it expires.
- ``/data/local-files/?d=<path>`` is read from disk inside ``LOCAL_FILES_DOCUMENT_ROOT`` when that is set (paths
  that escape it are refused), else fetched from Label Studio like an upload.
- Absolute ``http(s)://`` URLs are fetched as they are; credentials go only to Label Studio's own host.
- ``data:`` URIs are decoded by the standard library.

Every failure raises :class:`MediaError` with a reason a person can act on.

Example:
    >>> loader = ImageLoader(MediaSettings(label_studio_url="http://localhost:8080", api_key="..."))
    >>> loader.load("/data/upload/1/0f3a-cat.jpg").size              # doctest: +SKIP
    (640, 480)
"""

from __future__ import annotations

import logging
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
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
        base = root.expanduser().resolve()
        path = (base / relative.lstrip("/")).resolve()
        if not path.is_relative_to(base):
            raise MediaError(f"Local file {relative!r} is outside LOCAL_FILES_DOCUMENT_ROOT ({base}); refused")
        if not path.is_file():
            raise MediaError(f"Local file {path} does not exist")
        if path.stat().st_size > self.settings.max_bytes:
            raise MediaError(f"Local file {path} is larger than MEDIA_MAX_BYTES ({self.settings.max_bytes})")
        return path.read_bytes()

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
        headers = {"Authorization": self._authorization()} if authenticated and self.settings.api_key else {}
        try:
            with self._session.get(url, headers=headers, timeout=self.settings.timeout, stream=True) as response:
                if response.status_code in (401, 403):
                    raise MediaError(
                        f"HTTP {response.status_code} for {url}: Label Studio refused the credentials; set "
                        "LABEL_STUDIO_API_KEY to a valid legacy token or personal access token"
                    )
                response.raise_for_status()
                data = b"".join(_limited_chunks(response, self.settings.max_bytes))
        except MediaError:
            raise
        except requests.RequestException as error:
            raise MediaError(f"Could not download {url}: {error}") from error
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
            raise MediaError(f"{source[:80]} is larger than MEDIA_MAX_BYTES ({self.settings.max_bytes} bytes)")
        return data


def _limited_chunks(response: requests.Response, max_bytes: int) -> list[bytes]:
    """The body in chunks, stopping one chunk past ``max_bytes`` so oversized answers are not read whole."""
    chunks, total = [], 0
    for chunk in response.iter_content(chunk_size=1 << 16):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            break
    return chunks


def _location(value: object) -> str:
    """``value`` as an image location, or :class:`MediaError` for anything that cannot be one."""
    if not isinstance(value, str) or not value.strip():
        raise MediaError(f"Task data value {value!r} is not an image URL or path")
    return value.strip()
