"""Load the image a task points to: Label Studio uploads, cloud storage, http(s) URLs, ``data:`` URIs and local files.

Paths relative to Label Studio (``/data/upload/...``) are fetched from its URL with its key (label-studio-sdk
builds the header, refreshing a personal access token); credentials go only to Label Studio's own host. Cloud-storage
files (:mod:`label_studio_yolo.media.storage`) are read through Label Studio's resolve endpoint, whose redirect to a
presigned URL is followed without the key.
``/data/local-files/?d=<path>`` is read from disk inside ``LOCAL_FILES_DOCUMENT_ROOT`` when set (paths that escape
it are refused). A download must end within ``MEDIA_TIMEOUT`` seconds in all and hold at most ``MEDIA_MAX_BYTES``
(a larger declared ``Content-Length`` is refused before reading). Every failure raises :class:`MediaError`.

Example:
    >>> loader = ImageLoader(MediaSettings(label_studio_url="http://localhost:8080", api_key="..."))
    >>> loader.load("/data/upload/1/0f3a-cat.jpg").size              # doctest: +SKIP
    (640, 480)
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
import urllib3
from PIL import Image

from label_studio_yolo.allowed_hosts import HostPolicy, peer_check
from label_studio_yolo.errors import MediaError
from label_studio_yolo.label_studio_url import LabelStudioURL, NotAURL
from label_studio_yolo.logsafe import printable, text_shown, url_shown
from label_studio_yolo.media.checked_http import checked_session, refusal_in
from label_studio_yolo.media.data_uri import decode_data_uri
from label_studio_yolo.media.decode import Pixels, decode_image, decode_pixels
from label_studio_yolo.media.decode_budget import decode_budget
from label_studio_yolo.media.storage import StorageFile, locate
from label_studio_yolo.settings import DEFAULT_ALLOWED_HOSTS, DEFAULT_MAX_PIXELS, BackendSettings

__all__ = ["LOCAL_FILES_PREFIX", "ImageLoader", "MediaSettings"]

logger = logging.getLogger(__name__)

LOCAL_FILES_PREFIX = "/data/local-files/"
"""Path under which Label Studio serves files of its local-files storage (``?d=<relative path>``)."""

MAX_REDIRECTS = 5
"""Redirects followed for one download (each hop is checked like the first URL)."""

ERROR_DETAIL_BYTES = 4096
"""What is read of an error answer's body for its reason (Label Studio's JSON ``detail``, a storage's XML code)."""

PRESIGN_REFUSALS = (400, 401, 403)
"""What a storage answers to a presigned URL that expired or whose signature it rejects: asked for again once."""


@dataclass(frozen=True)
class MediaSettings:
    """Where images come from and how they are fetched."""

    label_studio_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    document_root: Path | None = None
    timeout: float = 15.0
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    allowed_hosts: str = DEFAULT_ALLOWED_HOSTS
    decode_bytes: int | None = None
    """Memory for decodes in flight in this process (None: no bound beyond ``max_pixels``)."""
    label_studio_from_setup: bool = False
    """Label Studio's URL came from ``/setup``, not ``LABEL_STUDIO_URL``: connections to it pass ``allowed_hosts``."""

    @classmethod
    def from_settings(
        cls,
        settings: BackendSettings,
        label_studio_url: str | None = None,
        api_key: str | None = None,
        from_setup: bool = False,
    ) -> MediaSettings:
        """The media settings of ``settings``, with Label Studio's URL and key as given (see
        :mod:`label_studio_yolo.credentials` for which ones a project gets)."""
        return cls(
            label_studio_url=label_studio_url,
            api_key=api_key,
            label_studio_from_setup=from_setup,
            document_root=settings.local_files_document_root,
            timeout=settings.media_timeout,
            max_bytes=settings.media_max_bytes,
            max_pixels=settings.media_max_pixels,
            allowed_hosts=settings.media_allowed_hosts,
            decode_bytes=settings.media_decode_bytes,
        )


class ImageLoader:
    """Loads task images as RGB PIL images, oriented as Label Studio shows them (EXIF rotation applied)."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self.label_studio = _label_studio_url(settings.label_studio_url)
        self.policy = HostPolicy.parse(settings.allowed_hosts)
        origin = self.label_studio.origin if self.label_studio and not settings.label_studio_from_setup else None
        trusted = frozenset([(origin.host, origin.port)] if origin else [])  # a configured Label Studio only
        self._session = checked_session(peer_check(self.policy, trusted))
        self._sdk_client: object | None = None
        self._sdk_lock = threading.Lock()
        self.decode_budget = decode_budget(settings.decode_bytes) if settings.decode_bytes else None

    def load(self, value: object) -> Image.Image:
        """The image at ``value`` (a task-data string, or a :class:`StorageFile`) as a Pillow image."""
        return decode_image(self.read_bytes(value), self.settings.max_pixels, self.decode_budget)

    def load_pixels(self, value: object) -> Pixels:
        """The image at ``value`` as the BGR array inference takes."""
        return decode_pixels(self.read_bytes(value), self.settings.max_pixels, self.decode_budget)

    def read_bytes(self, value: object) -> bytes:
        """The raw bytes ``value`` (a task-data string, or a :class:`StorageFile` located for its task) points to."""
        located = value if isinstance(value, StorageFile) else locate(_location(value))
        if isinstance(located, StorageFile):
            return self._read_storage_file(located)
        value = _location(value)
        if value.startswith("data:"):
            return self._read_data_uri(value)
        parts = urlsplit(value)
        if parts.scheme in ("http", "https"):
            on_label_studio = self.label_studio is not None and self.label_studio.owns(value)
            if on_label_studio and parts.path.startswith(LOCAL_FILES_PREFIX) and self.settings.document_root:
                return self._read_local_file(parts.query)
            return self._download(value)
        if parts.scheme or not value.startswith("/"):
            raise MediaError(
                f"Unsupported image location {url_shown(value, 80)}: expected http(s), data: or a /data/ path"
            )
        if parts.path.startswith(LOCAL_FILES_PREFIX) and self.settings.document_root:
            return self._read_local_file(parts.query)
        if self.label_studio is None:
            raise MediaError(
                f"Task image {url_shown(value)} is stored in Label Studio, but its URL is unknown: set LABEL_STUDIO_URL"
            )
        return self._download(self.label_studio.join(value))

    def _read_storage_file(self, stored: StorageFile, again: bool = False) -> bytes:
        """A cloud-storage file through Label Studio's resolve endpoint; a presigned URL the storage refuses (expired,
        say) is asked for ``again`` once."""
        shown = url_shown(stored.uri, 120)
        if stored.resolve_path is None:
            raise MediaError(f"Cloud storage file {shown} is read through its task in Label Studio; the task has no id")
        if self.label_studio is None:
            raise MediaError(
                f"Cloud storage file {shown} is served by Label Studio, but its URL is unknown: set LABEL_STUDIO_URL"
            )
        try:
            return self._download(self.label_studio.join(stored.resolve_path))
        except DownloadStatusError as error:
            if error.on_label_studio:
                raise MediaError(_resolve_refusal(stored, error)) from error
            if error.status in PRESIGN_REFUSALS and not again:
                logger.info(
                    "Cloud storage file %s: the storage refused Label Studio's presigned URL (HTTP %d%s); asking "
                    "Label Studio again",
                    shown,
                    error.status,
                    error.detail,
                )
                return self._read_storage_file(stored, again=True)
            raise MediaError(_storage_refusal(stored, error, twice=again)) from error
        except MediaError as error:
            raise MediaError(f"Could not read cloud storage file {shown} through Label Studio: {error}") from error

    def _read_data_uri(self, value: str) -> bytes:
        return decode_data_uri(value, self.settings.max_bytes)

    def _read_local_file(self, query: str) -> bytes:
        root = self.settings.document_root
        assert root is not None
        relative = parse_qs(query).get("d", [""])[0]  # parse_qs decodes once, as Label Studio does
        if not relative:
            raise MediaError("Local-files URL has no ?d=<path>")
        shown = printable(repr(relative))
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

    def _download(self, url: str) -> bytes:
        """The body at ``url``, redirects followed (each hop checked, the key sent only to Label Studio), within
        ``MEDIA_TIMEOUT`` in all (not per read: a trickling server is cut off too)."""
        deadline = time.monotonic() + self.settings.timeout
        for _ in range(MAX_REDIRECTS + 1):
            location = self._get(url, deadline)
            if isinstance(location, bytes):
                return location
            url = location
        raise MediaError(f"Could not download {url_shown(url)}: more than {MAX_REDIRECTS} redirects")

    def _get(self, url: str, deadline: float) -> bytes | str:
        """One request: the body, or the URL a redirect points to."""
        authenticated = self.label_studio is not None and self.label_studio.owns(url)
        headers = {"Authorization": self._authorization()} if authenticated and self.settings.api_key else {}
        timeout, shown = self.settings.timeout, url_shown(url)
        try:
            self._check_proxied(url)
            remaining = max(deadline - time.monotonic(), 0.001)
            with self._session.get(url, headers=headers, timeout=remaining, stream=True, allow_redirects=False) as got:
                if got.is_redirect:
                    return _redirect_target(url, got.headers.get("Location", ""))
                _check_status(got, shown, authenticated)
                _check_declared_length(got, shown, self.settings.max_bytes)
                data = _read_body(got, self.settings.max_bytes, deadline)
        except MediaError:
            raise
        except (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError) as error:
            raise MediaError(f"Could not download {shown}: timed out after {timeout:g} s (MEDIA_TIMEOUT)") from error
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            refused = refusal_in(error)
            if refused is not None:
                raise MediaError(f"Refused to download {shown}: {refused}{self._setup_advice(url)}") from error
            raise MediaError(f"Could not download {shown}: {text_shown(str(error), 300)}") from error
        return self._within_limit(data, url)

    def _check_proxied(self, url: str) -> None:
        """Where an HTTP proxy will connect for us, check the addresses of ``url``'s host before asking it."""
        if not self._session.trust_env or not requests.utils.get_environ_proxies(url):
            return
        parts = urlsplit(url)
        if self.label_studio is not None and self.label_studio.owns(url) and not self.settings.label_studio_from_setup:
            return
        self.policy.check_resolved(parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))

    def _setup_advice(self, url: str) -> str:
        """What to set when a refused ``url`` is on a Label Studio that only ``/setup`` named."""
        if self.label_studio is None or not self.settings.label_studio_from_setup or not self.label_studio.owns(url):
            return ""
        return (
            f". Label Studio's URL came from /setup; if {url_shown(self.label_studio.base)} is your Label Studio, set "
            "LABEL_STUDIO_URL to it"
        )

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
            raise MediaError(f"{url_shown(source)} is larger than MEDIA_MAX_BYTES ({self.settings.max_bytes} bytes)")
        return data


class DownloadStatusError(MediaError):
    """An error status: its code, whether Label Studio answered it, and the reason its body gives (`` (...)``)."""

    def __init__(self, message: str, status: int, on_label_studio: bool, detail: str) -> None:
        super().__init__(message)
        self.status, self.on_label_studio, self.detail = status, on_label_studio, detail


def _check_status(response: requests.Response, shown: str, authenticated: bool) -> None:
    """Raise :class:`DownloadStatusError` for an error status, saying what to do about a refusal."""
    status = response.status_code
    if status < 400:
        return
    detail = _error_detail(response)
    reason = f"HTTP {status} ({response.reason})" if response.reason else f"HTTP {status}"
    if status in (401, 403) and authenticated:
        message = (
            f"{reason} for {shown}: Label Studio refused the credentials; set LABEL_STUDIO_API_KEY to a valid "
            "legacy token or personal access token"
        )
    elif status in (401, 403):
        message = (
            f"Could not download {shown}: {reason}; credentials are sent only to Label Studio's own host "
            "(LABEL_STUDIO_URL), so this image must be readable without them"
        )
    else:
        message = f"Could not download {shown}: {reason}{detail}"
    raise DownloadStatusError(message, status, authenticated, detail)


def _error_detail(response: requests.Response) -> str:
    """`` (<reason>)`` from an error body: Label Studio's JSON ``detail``/``error``, or a storage's XML ``Code`` and
    ``Message`` (S3, GCS and Azure answer in XML); empty when there is none. Reads at most ERROR_DETAIL_BYTES."""
    try:
        body = response.raw.read(ERROR_DETAIL_BYTES, decode_content=True).decode("utf-8", "replace")
    except (OSError, urllib3.exceptions.HTTPError, ValueError):
        return ""
    found = re.findall(r"<(Code|Message)>([^<]{1,200})</", body)
    if found:
        return f" ({printable(': '.join(text for _, text in found[:2]), 300)})"
    try:
        parsed = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    text = parsed.get("detail") or parsed.get("error")
    return f" ({printable(text, 300)})" if isinstance(text, str) and text else ""


def _resolve_refusal(stored: StorageFile, error: DownloadStatusError) -> str:
    """Why Label Studio's resolve endpoint gave no file for ``stored``, and what to check."""
    shown, status = url_shown(stored.uri, 120), error.status
    if status == 404:
        return (
            f"Label Studio has no cloud storage that holds {shown} (HTTP 404 from its resolve endpoint): the "
            "project's storage was removed or no longer covers this bucket and prefix (Settings -> Cloud Storage), "
            "or the task is gone"
        )
    if status == 424:
        return (
            f"Label Studio could not read {shown} from its storage (HTTP 424{error.detail}): check the storage's "
            "credentials and that the object still exists (Settings -> Cloud Storage)"
        )
    if status in (401, 403):
        return (
            f"Label Studio refused to serve {shown} (HTTP {status}): LABEL_STUDIO_API_KEY must be a valid token of a "
            "user who can open the task's project"
        )
    return f"Label Studio could not serve {shown}: HTTP {status}{error.detail}"


def _storage_refusal(stored: StorageFile, error: DownloadStatusError, twice: bool = False) -> str:
    """Why the storage refused Label Studio's presigned URL for ``stored``, and what to check."""
    shown, status = url_shown(stored.uri, 120), error.status
    if status == 404:
        return (
            f"The storage has no object {shown} (HTTP 404{error.detail} for Label Studio's presigned URL): it was "
            "deleted or moved; sync the storage in Label Studio"
        )
    if twice:
        return (
            f"The storage refused Label Studio's presigned URL for {shown} twice (HTTP {status}{error.detail}): the "
            "object may be gone (S3 answers 403 for a missing key when the storage's credentials cannot list the "
            "bucket), or those credentials are no longer valid; check both in Label Studio (Settings -> Cloud Storage)"
        )
    return f"Could not read {shown} from its storage: HTTP {status}{error.detail}"


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


MAX_SHARED_LOADERS = 32
"""Loaders kept for reuse, one per Label Studio, key and media setting (each holds a connection pool)."""

_shared: OrderedDict[MediaSettings, ImageLoader] = OrderedDict()
_shared_lock = threading.Lock()


def shared_loader(settings: MediaSettings) -> ImageLoader:
    """The process's loader for ``settings``: projects with the same Label Studio and key share one (its session,
    connection pool and token refresh), so memory does not grow with the number of projects."""
    with _shared_lock:
        loader = _shared.get(settings)
        if loader is None:
            loader = _shared[settings] = ImageLoader(settings)
        _shared.move_to_end(settings)
        while len(_shared) > MAX_SHARED_LOADERS:
            _shared.popitem(last=False)
        return loader


def _label_studio_url(url: str | None) -> LabelStudioURL | None:
    if not url:
        return None
    try:
        return LabelStudioURL(url)
    except NotAURL as error:
        raise MediaError(f"Label Studio's URL {url_shown(url)} cannot be used: {error}") from error


def _redirect_target(url: str, location: str) -> str:
    """The absolute URL a redirect from ``url`` points to; only http(s) targets are followed."""
    target = urljoin(url, location.strip())
    if urlsplit(target).scheme not in ("http", "https"):
        raise MediaError(f"Could not download {url_shown(url)}: it redirects to {url_shown(target)}, not http(s)")
    return target


def _location(value: object) -> str:
    """``value`` as an image location, or :class:`MediaError` for anything that cannot be one."""
    if not isinstance(value, str) or not value.strip():
        raise MediaError(f"Task data value {printable(value, 80)} is not an image URL or path")
    return value.strip()
