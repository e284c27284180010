"""Which Label Studio a project's images are downloaded from, and with which key.

Label Studio's ``/setup`` call carries a ``hostname`` and an ``access_token``; so can anyone's, when the backend is
reachable without Basic auth. The rules, so that a key goes only where it belongs:

- ``LABEL_STUDIO_URL`` set: images come from there, whatever ``/setup`` says; the key is ``LABEL_STUDIO_API_KEY``,
  else the token ``/setup`` sent.
- ``LABEL_STUDIO_URL`` unset: a project's images come from the ``hostname`` its first ``/setup`` gave, with the token
  that came with it; a later ``/setup`` naming another host is refused (:class:`SetupRefused`) and logged.
  ``LABEL_STUDIO_API_KEY`` is never used: a configured key goes only to a configured URL. A Label Studio named only
  by ``/setup`` is held to ``MEDIA_ALLOWED_HOSTS`` like any task URL: checked here, and again on every connection
  (:attr:`LabelStudioAccess.from_setup`).

Example:
    >>> book = AccessBook()
    >>> book.record_setup("3.1700000000", "http://ls:8080", "token-3", settings)       # doctest: +SKIP
    >>> book.access_for("3.1700000000", settings).url                                 # doctest: +SKIP
    'http://ls:8080'
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from label_studio_yolo.allowed_hosts import HostPolicy, RefusedAddress
from label_studio_yolo.errors import SetupRefused
from label_studio_yolo.label_studio_url import LabelStudioURL, NotAURL
from label_studio_yolo.logsafe import printable, text_shown, url_shown
from label_studio_yolo.settings import BackendSettings

logger = logging.getLogger(__name__)

MAX_REMEMBERED_PROJECTS = 10_000
"""Projects whose ``/setup`` hostname and token are kept per process (the oldest is forgotten first)."""


@dataclass(frozen=True)
class LabelStudioAccess:
    """Label Studio's base URL for a project's ``/data/...`` images, the key sent with them, and whether the URL came
    from ``/setup`` (then every connection to it must pass ``MEDIA_ALLOWED_HOSTS``) rather than ``LABEL_STUDIO_URL``."""

    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    from_setup: bool = False


@dataclass
class _Setup:
    label_studio: LabelStudioURL
    token: str | None = field(repr=False)


class AccessBook:
    """What ``/setup`` told this process, per project, and the rules for using it (thread-safe)."""

    def __init__(self, max_projects: int = MAX_REMEMBERED_PROJECTS) -> None:
        self._setups: OrderedDict[str, _Setup] = OrderedDict()
        self._max_projects = max_projects
        self._lock = threading.Lock()

    def record_setup(
        self, project: str, hostname: object, access_token: object, settings: BackendSettings
    ) -> LabelStudioAccess:
        """Take what one ``/setup`` sent for ``project``; returns the access the project now has.

        Raises:
            SetupRefused: ``LABEL_STUDIO_URL`` is unset and ``hostname`` is not a usable URL, is a host
                ``MEDIA_ALLOWED_HOSTS`` refuses, or differs from the hostname the project was first set up from.
        """
        token = access_token if isinstance(access_token, str) and access_token else None
        if settings.label_studio_url or not hostname:
            with self._lock:
                known = self._setups.get(project)
                if known is None and token and settings.label_studio_url:
                    self._remember(project, _Setup(LabelStudioURL(settings.label_studio_url), token))
                elif known is not None and token:
                    known.token = token
            return self.access_for(project, settings)
        label_studio = _hostname_url(project, hostname)
        with self._lock:
            known = self._setups.get(project)
        if known is not None and known.label_studio != label_studio:
            raise SetupRefused(_moved_message(project, known.label_studio, label_studio))
        if known is None:
            _check_allowed(project, label_studio, HostPolicy.parse(settings.media_allowed_hosts))
        with self._lock:
            known = self._setups.get(project)
            if known is not None and known.label_studio != label_studio:
                raise SetupRefused(_moved_message(project, known.label_studio, label_studio))
            if known is None:
                self._remember(project, _Setup(label_studio, token))
            elif token:
                known.token = token
        return self.access_for(project, settings)

    def access_for(self, project: str, settings: BackendSettings) -> LabelStudioAccess:
        """The Label Studio URL and key for ``project``'s images (none known: ``LabelStudioAccess()``)."""
        with self._lock:
            setup = self._setups.get(project)
        token = setup.token if setup else None
        if settings.label_studio_url:
            return LabelStudioAccess(settings.label_studio_url, settings.label_studio_api_key or token)
        if setup is None:
            return LabelStudioAccess()
        return LabelStudioAccess(setup.label_studio.base, token, from_setup=True)

    def _remember(self, project: str, setup: _Setup) -> None:
        self._setups[project] = setup
        while len(self._setups) > self._max_projects:
            self._setups.popitem(last=False)


def _hostname_url(project: str, hostname: object) -> LabelStudioURL:
    if not isinstance(hostname, str):
        raise SetupRefused(f"Project {printable(project)}: /setup's 'hostname' must be Label Studio's URL (a string)")
    try:
        return LabelStudioURL(hostname)
    except NotAURL as error:
        raise SetupRefused(
            f"Project {printable(project)}: /setup's hostname {url_shown(hostname)} is not Label Studio's URL "
            f"({error}); set LABEL_STUDIO_URL to it"
        ) from error


def _check_allowed(project: str, label_studio: LabelStudioURL, policy: HostPolicy) -> None:
    """Refuse a Label Studio named by ``/setup`` whose host ``policy`` refuses (resolved now; every connection to it is
    checked again, so a name that resolves elsewhere later is refused then)."""
    origin = label_studio.origin
    try:
        policy.check_resolved(origin.host, origin.port)
    except RefusedAddress as refused:
        reason = f"{refused}"
    except OSError as error:  # the name does not resolve here
        reason = f"its host cannot be resolved here ({text_shown(str(error), 200)})"
    else:
        return
    raise SetupRefused(
        f"Project {printable(project)}: /setup says Label Studio is at {url_shown(label_studio.base)}. Refused: "
        f"{reason}. A Label Studio named only by /setup is held to MEDIA_ALLOWED_HOSTS like any task URL; if this "
        f"is your Label Studio, set LABEL_STUDIO_URL={url_shown(label_studio.base)}"
    )


def _moved_message(project: str, known: LabelStudioURL, claimed: LabelStudioURL) -> str:
    return (
        f"Project {printable(project)} was set up from Label Studio at {url_shown(known.base)}; a /setup now says "
        f"{url_shown(claimed.base)}. Refused: images and the API key stay with the first. If Label Studio really "
        "moved, set LABEL_STUDIO_URL to its URL (and restart the backend)"
    )
