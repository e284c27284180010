"""Whether a URL is Label Studio's: the one place that decides where its API key may go.

A URL is Label Studio's when its scheme, host and port are those of Label Studio's base URL (after normalising:
case, a trailing dot, IDNA, default ports, IPv6 forms) and its path lies under the base URL's path. A URL with a
user name or password in it never is. A task's Label Studio path (``/data/upload/...``) is appended to the base
URL, so it stays a path on Label Studio whatever it holds (``/http://elsewhere/...`` included).

Example:
    >>> label_studio = LabelStudioURL("https://ls.example.com")
    >>> label_studio.owns("https://LS.example.com:443/data/upload/1/a.jpg")
    True
    >>> label_studio.owns("http://ls.example.com/data/upload/1/a.jpg")      # not over TLS: no key
    False
    >>> label_studio.join("/http://127.0.0.2/a.png")
    'https://ls.example.com/http://127.0.0.2/a.png'
"""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
"""The schemes Label Studio is served over, and the port each means when a URL names none."""


class NotAURL(ValueError):
    """A value that should be an http(s) URL of a server is not one; the message says why."""


@dataclass(frozen=True)
class Origin:
    """Scheme, host and port of an http(s) URL, normalised so that two spellings of one server compare equal."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = DEFAULT_PORTS[self.scheme] == self.port
        return f"{self.scheme}://{host}" if default else f"{self.scheme}://{host}:{self.port}"


def origin_of(url: str) -> Origin:
    """The normalised origin of ``url``.

    Raises:
        NotAURL: not an http(s) URL with a host, or it carries a user name or password, or its port is invalid.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:  # an invalid port or IPv6 literal
        raise NotAURL(f"not a valid URL ({error})") from error
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise NotAURL("not an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise NotAURL("it holds a user name or password")
    if not parts.hostname:
        raise NotAURL("it has no host")
    return Origin(scheme, normalised_host(parts.hostname), port if port is not None else DEFAULT_PORTS[scheme])


def normalised_host(host: str) -> str:
    """``host`` in one canonical spelling: lower case, no trailing dot, IDNA (ASCII) for names, compressed IPv6."""
    host = host.strip().rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


class LabelStudioURL:
    """Label Studio's base URL: which URLs are its own, and the absolute URL of one of its paths."""

    def __init__(self, base: str) -> None:
        """Raises :class:`NotAURL` when ``base`` is not an http(s) URL of a host (without user or password)."""
        self.origin = origin_of(base)
        self.base = base.strip().rstrip("/")
        self._path = _normalised_path(urlsplit(self.base).path).rstrip("/")

    def owns(self, url: str) -> bool:
        """Whether ``url`` is on Label Studio: same scheme, host and port, and a path under the base URL's."""
        try:
            origin = origin_of(url)
        except NotAURL:
            return False
        if origin != self.origin:
            return False
        path = _normalised_path(urlsplit(url.strip()).path)
        return not self._path or path == self._path or path.startswith(self._path + "/")

    def join(self, path: str) -> str:
        """The absolute URL of ``path`` (a task's ``/data/...`` value) on Label Studio: ``path`` is appended to the
        base URL as a path, never read as a URL of its own."""
        return self.base + "/" + path.lstrip("/")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelStudioURL) and (self.origin, self._path) == (other.origin, other._path)

    def __hash__(self) -> int:
        return hash((self.origin, self._path))

    def __repr__(self) -> str:
        return f"LabelStudioURL({self.base!r})"


def _normalised_path(path: str) -> str:
    """``path`` percent-decoded with its dot segments resolved (``/ls/../admin`` is ``/admin``)."""
    decoded = unquote(path) or "/"
    normalised = posixpath.normpath(decoded)
    return "/" + normalised.lstrip("/") if normalised != "." else "/"
