"""Values from requests, made safe to write into a log line or an error message.

A task id, an image URL, a label or a project string comes from whoever sent the request. Written as it is, a
newline in it forges a second log line, an escape sequence rewrites the operator's terminal, a megabyte-long
``data:`` URI floods the log, and a URL's password or a presigned query's signature leaks to whoever reads it.

- :func:`printable` escapes every control and format character (``\\n``, ``\\x1b``, U+2028, bidi overrides) and
  shortens the text, keeping its start and end.
- :func:`url_shown` does the same for a URL after hiding its password and the values of query parameters that
  carry credentials.
- :func:`without_secrets` hides the same inside any text: an exception's message quotes the URL it failed on
  (``...with url: /a.png?X-Amz-Signature=...``), whole or in part, and a URL that does not parse. The logging
  handlers apply it to every line and traceback (:mod:`label_studio_yolo.logging_setup`); :func:`text_shown` is it
  with :func:`printable`, for an error's text in a message.

Example:
    >>> printable("7\\nERROR forged line")
    '7\\\\nERROR forged line'
    >>> url_shown("http://user:secret@example.com/a.jpg?X-Amz-Signature=abc&d=1")
    'http://user:***@example.com/a.jpg?X-Amz-Signature=***&d=1'
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_LIMIT = 120
"""Characters of a value shown in a log line (its start and end are kept)."""

HIDDEN = "***"
"""What a password or a credential's value is replaced with."""

SECRET_QUERY_KEYS = re.compile(r"(token|key|secret|signature|sig|password|passwd|credential|auth|session)", re.I)
"""Query parameter names whose values are credentials (access tokens, S3/GCS/Azure presigned signatures, ...)."""


USERINFO_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]{0,30}://[^\s/?#@:'\"]*):[^\s/?#'\"]*@")
"""``scheme://user:password@`` anywhere in a text (a URL that does not parse included)."""

SECRET_PARAMETER = re.compile(
    r"(?i)([?&;][^\s=&;?#'\"]{0,80}?" + SECRET_QUERY_KEYS.pattern + r"[^\s=&;?#'\"]{0,80}=)[^\s&;#'\")]*"
)
"""``?name=value`` or ``&name=value`` anywhere in a text, where ``name`` says it carries a credential."""


def without_secrets(text: str) -> str:
    """``text`` with every URL password and credential-carrying query value in it replaced by :data:`HIDDEN`."""
    if "@" in text:
        text = USERINFO_PASSWORD.sub(lambda found: f"{found.group(1)}:{HIDDEN}@", text)
    if "=" in text:
        text = SECRET_PARAMETER.sub(lambda found: f"{found.group(1)}{HIDDEN}", text)
    return text


def text_shown(text: object, limit: int = DEFAULT_LIMIT) -> str:
    """An error's or a server's text for a log line or a message: :func:`without_secrets`, then :func:`printable`."""
    return printable(without_secrets(text if isinstance(text, str) else repr(text)), limit)


def printable(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` as text with control and format characters escaped, cut to about ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    return shortened("".join(_escaped(char) for char in text), limit)


def url_shown(url: object, limit: int = DEFAULT_LIMIT) -> str:
    """A URL for a log line: password and credential query values hidden, then :func:`printable`.

    ``data:`` URIs are shown by their media type and length only (their content is the image).
    """
    if not isinstance(url, str):
        return printable(url, limit)
    if url.startswith("data:"):
        return printable(f"{url[:40].split(',', 1)[0]},...({len(url)} characters)", limit)
    return printable(without_secrets(_without_credentials(url)), limit)


def json_type(value: object) -> str:
    """The JSON name of ``value``'s type, as a Label Studio user would call it (for messages about a request)."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def shortened(text: str, limit: int = DEFAULT_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters: its start and end are kept (a URL's host and file name, an error's
    cause)."""
    if len(text) <= limit:
        return text
    return f"{text[: limit // 2]}...({len(text)} characters)...{text[-limit // 2 :]}"


def _escaped(char: str) -> str:
    """``char``, or its escape when it is a control, format, separator or surrogate character."""
    if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Cs"):
        return char.encode("unicode_escape").decode("ascii") if ord(char) < 0x10000 else f"\\U{ord(char):08x}"
    return char


def _without_credentials(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # an invalid port or IPv6 literal: show it without trying to take it apart
        return url
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username or ''}:{HIDDEN}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(SECRET_QUERY_KEYS.search(name) for name, _ in pairs):
            query = urlencode([(n, HIDDEN if SECRET_QUERY_KEYS.search(n) else v) for n, v in pairs], safe="*/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
