"""Decode a ``data:`` URI (RFC 2397) within a byte limit, in memory a small multiple of that limit.

``data:[<mediatype>][;base64],<data>``: the data is percent-encoded, and base64 on top when ``;base64`` ends the
media type. It is decoded as browsers decode it (the WHATWG fetch standard's data: URL processor, which is what
Label Studio's annotators see): percent-escapes first, then base64 with ASCII whitespace ignored and the padding
optional; anything else in base64 is an error. A ``#fragment`` is not data.

A URI whose length alone shows that its data is larger than the limit is refused before decoding; any other is
decoded in pieces, and decoding stops as soon as the limit is passed.

Example:
    >>> decode_data_uri("data:text/plain;charset=utf-8,caf%C3%A9", max_bytes=1024)
    b'caf\\xc3\\xa9'
    >>> decode_data_uri("data:;base64,SGVsbG8=", max_bytes=1024)
    b'Hello'
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

from label_studio_yolo.errors import MediaError
from label_studio_yolo.logsafe import url_shown

__all__ = ["decode_data_uri"]

PIECE = 1 << 18
"""Characters of the data decoded at a time (memory for one piece is a few times this, whatever the URI's length)."""

BASE64_MARK = re.compile(r";\x20*base64[\t\n\f\r\x20]*\Z", re.IGNORECASE | re.ASCII)
"""``;base64`` at the end of the media type, in any case (WHATWG's rule)."""

WHITESPACE = b"\t\n\f\r "
"""ASCII whitespace, which base64 data may be wrapped with."""


def decode_data_uri(value: str, max_bytes: int) -> bytes:
    """The bytes a ``data:`` URI holds.

    Raises:
        MediaError: not a data: URI, a malformed one, or data larger than ``max_bytes`` once decoded (the
            message names MEDIA_MAX_BYTES).
    """
    if value[:5].lower() != "data:":
        raise MediaError(f"{url_shown(value)} is not a data: URI")
    end = _fragment_start(value)
    comma = value.find(",", 5, end)
    if comma < 0:
        raise MediaError(f"Malformed data: URI {url_shown(value)}: no ',' separates its media type from its data")
    base64 = BASE64_MARK.search(value, max(5, comma - 32), comma) is not None
    _refuse_by_length(value, comma + 1, end, base64, max_bytes)
    pieces = _unquoted_pieces(value, comma + 1, end)
    chunks, total = [], 0
    for chunk in _Base64(value).decoded(pieces) if base64 else pieces:
        total += len(chunk)
        if total > max_bytes:
            raise MediaError(f"{_too_large(value, max_bytes)}: decoding stopped after {total} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _fragment_start(value: str) -> int:
    """Where the data ends: at the first ``#`` (a URI's fragment), else at the end."""
    hash_mark = value.find("#", 5)
    return len(value) if hash_mark < 0 else hash_mark


def _refuse_by_length(value: str, start: int, end: int, base64: bool, max_bytes: int) -> None:
    """Refuse data whose decoded size must exceed ``max_bytes``, from the characters of ``value[start:end]``.

    Percent-encoded, every byte takes at most 3 characters (``%41``). In base64, 4 characters are 3 bytes; what
    counts is the characters that are not whitespace, padding or part of a percent-escape (counted only when the
    length alone is over the limit, which is rare).
    """
    length = end - start
    if not base64:
        least = -(-length // 3)
    elif length * 3 // 4 <= max_bytes:
        return
    else:
        others = 3 * value.count("%", start, end) + value.count("=", start, end)
        others += sum(value.count(space, start, end) for space in WHITESPACE.decode())
        least = max(0, length - others) * 3 // 4
    if least > max_bytes:
        encoding = "base64" if base64 else "percent-encoded"
        raise MediaError(
            f"{_too_large(value, max_bytes)}: its {length} characters of {encoding} data decode to {least} bytes "
            "at least"
        )


def _too_large(value: str, max_bytes: int) -> str:
    return f"data: URI {url_shown(value)} is larger than MEDIA_MAX_BYTES ({max_bytes} bytes)"


def _unquoted_pieces(value: str, start: int, end: int) -> Iterator[bytes]:
    """``value[start:end]`` percent-decoded, in pieces of about :data:`PIECE` characters. An escape cut by a piece's
    end goes whole into the next piece (``unquote_to_bytes`` would keep the cut escape as it is)."""
    position = start
    while position < end:
        stop = min(position + PIECE, end)
        if stop < end:
            cut = value.find("%", stop - 2, stop)  # a '%' among a piece's last two characters starts a cut escape
            stop = cut if cut >= 0 else stop
        yield unquote_to_bytes(value[position:stop])
        position = stop


class _Base64:
    """Decodes base64 that comes in pieces: whole 4-character groups at a time, the rest held for the next piece.
    The last group, the only one that may hold padding, is held to the end."""

    def __init__(self, value: str) -> None:
        self.value = value

    def decoded(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        """The bytes ``pieces`` (the percent-decoded data) encode, a piece at a time."""
        held = b""
        for piece in pieces:
            text = held + piece.translate(None, WHITESPACE)
            usable = len(text) - (len(text) % 4 or 4)
            if usable <= 0:
                held = text
                continue
            if text.find(b"=", 0, usable) >= 0:  # only the last group may hold padding
                raise self._malformed("padding '=' comes before the end of its base64 data")
            held = text[usable:]
            yield self._decoded(text[:usable])
        yield self._last(held)

    def _last(self, text: bytes) -> bytes:
        """The last group; its padding may be left out, as browsers allow."""
        if len(text) % 4 == 1:
            raise self._malformed("its base64 data ends with a single character of a 4-character group")
        if b"=" not in text:
            text += b"=" * (-len(text) % 4)
        return self._decoded(text) if text else b""

    def _decoded(self, text: bytes) -> bytes:
        try:
            return binascii.a2b_base64(text, strict_mode=True)
        except binascii.Error as error:
            raise self._malformed(f"its base64 data is invalid ({error})") from error

    def _malformed(self, reason: str) -> MediaError:
        return MediaError(f"Malformed data: URI {url_shown(self.value)}: {reason}")
