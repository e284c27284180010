"""data: URIs decode to the bytes the standard library (and a browser) finds in them, within MEDIA_MAX_BYTES and in
memory a small multiple of the data, whatever the URI's size or encoding."""

from __future__ import annotations

import base64
import io
import os
import urllib.request
from urllib.parse import quote_from_bytes

import pytest
from PIL import Image

from label_studio_yolo.errors import MediaError
from label_studio_yolo.media.data_uri import PIECE, decode_data_uri
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from tests.support.peak_memory import run_probe

PNG = (lambda buffer: (Image.new("RGB", (31, 17), (200, 30, 30)).save(buffer, "PNG"), buffer.getvalue())[1])(
    io.BytesIO()
)
BINARY = bytes(range(256)) * 4

SAME_AS_URLOPEN = {
    "base64 image": "data:image/png;base64," + base64.b64encode(PNG).decode(),
    "base64, no media type": "data:;base64,SGVsbG8=",
    "base64 with a parameter": "data:image/png;name=a.png;base64," + base64.b64encode(BINARY).decode(),
    "base64, percent-encoded": "data:;base64," + quote_from_bytes(base64.b64encode(BINARY), safe=""),
    "base64 wrapped in lines": "data:;base64," + base64.encodebytes(BINARY).decode(),
    "base64, empty": "data:;base64,",
    "percent-encoded": "data:,hello%20world",
    "percent-encoded bytes": "data:application/octet-stream," + quote_from_bytes(BINARY),
    "charset parameter": "data:text/plain;charset=utf-8,caf%C3%A9",
    "two parameters": "data:text/plain;charset=US-ASCII;name=a.txt,plain",
    "unencoded non-ASCII": "data:,café",
    "invalid escapes kept": "data:,%zz%4",
    "empty": "data:,",
}
"""Well-formed URIs: decoded as ``urllib.request.urlopen`` decodes them."""

AS_BROWSERS_DO = {
    "a fragment is not data": ("data:,abc#frag", b"abc"),
    ";BASE64 in capitals": ("data:;BASE64,SGVsbG8=", b"Hello"),
    "padding left out": ("data:;base64,SGVsbG8", b"Hello"),
}
"""Where ``urlopen`` departs from browsers, which show what Label Studio's annotators see."""

MALFORMED = {
    "no comma": ("data:image/png;base64", "no ',' separates its media type from its data"),
    "not base64": ("data:image/png;base64,!!!notbase64", "its base64 data is invalid"),
    "a character too many": ("data:;base64,SGVsbG8gA", "ends with a single character of a 4-character group"),
    "padding inside": ("data:;base64,SGk=SGk=", "padding '=' comes before the end"),
    "padding in a long URI": ("data:;base64," + "A" * PIECE + "AA==" + "A" * 8, "padding '=' comes before the end"),
}


def urlopen_bytes(uri: str) -> bytes:
    with urllib.request.urlopen(uri) as response:
        data: bytes = response.read()
    return data


@pytest.mark.parametrize("uri", SAME_AS_URLOPEN.values(), ids=SAME_AS_URLOPEN.keys())
def test_decodes_as_urlopen_does(uri: str) -> None:
    assert decode_data_uri(uri, max_bytes=10_000) == urlopen_bytes(uri)


@pytest.mark.parametrize(("uri", "expected"), AS_BROWSERS_DO.values(), ids=AS_BROWSERS_DO.keys())
def test_decodes_as_browsers_do(uri: str, expected: bytes) -> None:
    assert decode_data_uri(uri, max_bytes=10_000) == expected


@pytest.mark.parametrize("offset", [0, 1, 2])
def test_an_escape_cut_between_two_pieces_is_decoded_whole(offset: int) -> None:
    """URIs longer than a piece, with percent-escapes across every possible cut, plain and inside base64."""
    percent = "data:," + "x" * offset + quote_from_bytes(os.urandom(PIECE // 2), safe="")
    escaped_base64 = "".join(f"%{ord(c):02X}" for c in base64.b64encode(os.urandom(PIECE // 8)).decode())
    inside_base64 = "data:;base64," + "QUJD" * offset + escaped_base64

    for uri in (percent, inside_base64):
        assert decode_data_uri(uri, max_bytes=PIECE) == urlopen_bytes(uri)


@pytest.mark.parametrize(("uri", "reason"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_uri_gets_a_clear_error(uri: str, reason: str) -> None:
    with pytest.raises(MediaError) as raised:
        decode_data_uri(uri, max_bytes=10 * PIECE)

    message = str(raised.value)
    assert message.startswith("Malformed data: URI data:"), message
    assert reason in message
    assert len(message) < 250, "the URI is shown by its media type and length, not whole"


def test_a_uri_longer_than_its_limit_allows_is_refused_from_its_length() -> None:
    for uri, least in [("data:," + "%41" * 3001, 3001), ("data:;base64," + "QUJD" * 1334, 4002)]:
        with pytest.raises(MediaError) as raised:
            decode_data_uri(uri, max_bytes=3000)

        assert "is larger than MEDIA_MAX_BYTES (3000 bytes)" in str(raised.value)
        assert f"decode to {least} bytes at least" in str(raised.value)


def test_decoding_stops_once_the_limit_is_passed() -> None:
    """Plain characters are a byte each: 3 MiB of them could be under a 2 MiB limit from the length alone."""
    with pytest.raises(MediaError) as raised:
        decode_data_uri("data:," + "a" * (3 << 20), max_bytes=2 << 20)

    assert "is larger than MEDIA_MAX_BYTES (2097152 bytes): decoding stopped after" in str(raised.value)


def test_whitespace_and_escapes_are_not_counted_as_base64_data() -> None:
    """Base64 wrapped in lines, and escaped, is longer than its data: it is refused only by what it decodes to."""
    uri = "data:;base64," + quote_from_bytes(base64.encodebytes(bytes(3000)), safe="")

    assert decode_data_uri(uri, max_bytes=3000) == bytes(3000)


def test_control_characters_of_a_uri_are_escaped_in_the_message() -> None:
    with pytest.raises(MediaError) as raised:
        decode_data_uri("data:\x1b[31mforged\nline;base64,!!!!", max_bytes=100)

    assert "\n" not in str(raised.value) and "\x1b" not in str(raised.value)
    assert "\\x1b[31mforged\\nline;base64" in str(raised.value)


def test_the_loader_decodes_a_percent_encoded_image_within_max_bytes() -> None:
    uri = "data:image/png," + quote_from_bytes(PNG)

    assert ImageLoader(MediaSettings()).load_pixels(uri).shape == (17, 31, 3)
    with pytest.raises(MediaError, match=rf"larger than MEDIA_MAX_BYTES \({len(PNG) - 1} bytes\)"):
        ImageLoader(MediaSettings(max_bytes=len(PNG) - 1)).load_pixels(uri)


def test_a_10_mb_percent_encoded_uri_takes_a_small_multiple_of_its_size() -> None:
    """urlopen took about 80 times the URI's size (a list of one bytes object per escape, then copies)."""
    probe = (
        "from urllib.parse import quote_from_bytes\n"
        "from label_studio_yolo.media.data_uri import decode_data_uri\n"
        "body = bytes(range(256)) * 15_800  # 4 MB\n"
        "uri = 'data:application/octet-stream,' + quote_from_bytes(body)\n"
        "decode_data_uri('data:,%41', 10)  # imports and first-call setup\n"
        "before = reset_peak()\n"
        "decoded = decode_data_uri(uri, 50 << 20)\n"
        "print(json.dumps({'same': decoded == body, 'uri': len(uri), 'grown_kib': peak_kib() - before}))\n"
    )

    result = run_probe(probe)

    assert result["same"]
    assert result["uri"] > 10_000_000
    assert result["grown_kib"] * 1024 < 5 * result["uri"], f"{result['grown_kib'] // 1024} MiB"
