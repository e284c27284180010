"""Turn image bytes into pixels, oriented as Label Studio shows them (EXIF orientation applied), by one path.

:func:`decode_pixels` gives the BGR ``uint8`` array inference takes; :func:`decode_image` gives the same pixels as
a Pillow RGB image (for training), so training learns from exactly what serving predicts on.

An image larger than ``max_pixels`` (``MEDIA_MAX_PIXELS``) is refused from its header, before any pixel is decoded;
with a ``budget`` (:mod:`label_studio_yolo.media.decode_budget`), a decode waits until the memory it needs is free.
JPEG, PNG and WebP are decoded by OpenCV (faster, and BGR already), other formats by Pillow; the EXIF orientation
is applied as ``ImageOps.exif_transpose`` applies it. Every failure raises :class:`MediaError` with the reason.

Example:
    >>> pixels = decode_pixels(Path("bus.jpg").read_bytes(), max_pixels=100_000_000)       # doctest: +SKIP
    >>> pixels.shape, pixels.dtype
    ((1080, 810, 3), dtype('uint8'))
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from label_studio_yolo.errors import MediaError
from label_studio_yolo.logsafe import printable
from label_studio_yolo.media.decode_budget import DecodeBudget, decode_cost
from label_studio_yolo.settings import DEFAULT_MAX_PIXELS

Pixels = np.ndarray[Any, np.dtype[np.uint8]]
"""An image as ultralytics reads it: height x width x 3, BGR, uint8."""

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
"""Formats decoded (Pillow's names; JPEG includes MPO): the images browsers, and so Label Studio, show, and phones'
HEIC. Pillow knows some forty more (EPS runs Ghostscript, PCD, FITS, ...): each is code an attacker could feed."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

OPENCV_SIGNATURES: dict[str, Callable[[bytes], bool]] = {
    "JPEG": lambda data: data.startswith(b"\xff\xd8\xff"),
    "MPO": lambda data: data.startswith(b"\xff\xd8\xff"),  # a camera's JPEG with a second picture: the first is shown
    "PNG": lambda data: data.startswith(PNG_SIGNATURE),
    "WEBP": lambda data: data.startswith(b"RIFF") and data[8:12] == b"WEBP",
}
"""Formats OpenCV decodes (by Pillow's name), with the signature OpenCV recognises them by. OpenCV picks its decoder
from the first bytes, not from Pillow's verdict: checking the same signature makes sure it decodes the image whose
header Pillow checked, not another format hidden in the same bytes. Pillow decodes the rest."""

BROKEN = (OSError, SyntaxError, ValueError, TypeError, KeyError, IndexError, struct.error, EOFError)
"""What Pillow raises for damaged content."""

TRANSPOSED: dict[object, Callable[[Pixels], Pixels]] = {
    2: lambda a: a[:, ::-1],  # mirrored
    3: lambda a: a[::-1, ::-1],  # upside down
    4: lambda a: a[::-1],  # mirrored upside down
    5: lambda a: a.transpose(1, 0, 2),  # transposed
    6: lambda a: a.transpose(1, 0, 2)[:, ::-1],  # 90 degrees clockwise to display
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # transversed
    8: lambda a: a.transpose(1, 0, 2)[::-1],  # 90 degrees counter-clockwise to display
}
"""EXIF orientation -> how stored pixels turn to display, as ``ImageOps.exif_transpose`` turns them."""


@functools.cache
def _register_heif() -> None:
    """Teach Pillow HEIC/HEIF (phone photos) once per process."""
    from pi_heif import register_heif_opener

    register_heif_opener()


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, budget: DecodeBudget | None = None) -> Image.Image:
    """Decode bytes (any format Pillow reads, plus HEIC/HEIF) into an RGB image as displayed: the pixels of
    :func:`decode_pixels`, so training and serving see the same image."""
    return Image.fromarray(np.ascontiguousarray(decode_pixels(data, max_pixels, budget)[:, :, ::-1]))


def decode_pixels(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, budget: DecodeBudget | None = None) -> Pixels:
    """Decode bytes into a BGR ``uint8`` array (height x width x 3) as displayed (EXIF orientation applied), within
    ``budget``'s memory when one is given.

    Raises:
        MediaError: not an image, a damaged one, one of more than ``max_pixels`` pixels (refused from its header),
            or one whose decode the budget cannot hold.
    """
    _register_heif()
    with _opened(data, max_pixels) as opened:  # reads the header only
        _check_size(opened, max_pixels)
        width, height = opened.size
        what = f"a {width}x{height} {opened.format}"
        if _opencv_reads(data, opened):
            with _reserved(budget, decode_cost(width * height, opencv=True), what):
                pixels = _opencv_pixels(data, opened)
            if pixels is not None:
                return pixels
        with _reserved(budget, decode_cost(width * height, opencv=False, image_format=opened.format), what):
            return _pillow_pixels(opened)


def _reserved(budget: DecodeBudget | None, cost: int, what: str) -> AbstractContextManager[None]:
    return budget.reserved(cost, what) if budget is not None else nullcontext()


def _opened(data: bytes, max_pixels: int) -> Image.Image:
    """The image opened lazily by Pillow: its header read, nothing decoded."""
    try:
        return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as error:
        raise MediaError(_pillow_bomb_message(error, max_pixels)) from error
    except UnidentifiedImageError as error:
        raise MediaError(f"Content is not a readable image: {_described(data)}") from error
    except BROKEN as error:
        raise MediaError(f"Content is not a readable image ({printable(error)})") from error


def _check_size(opened: Image.Image, max_pixels: int) -> None:
    """Refuse an image of more than ``max_pixels`` pixels from the size its header gives."""
    width, height = opened.size
    if width * height > max_pixels:
        raise MediaError(
            f"Image of {width} x {height} pixels ({width * height} pixels) refused before decoding: larger than "
            f"MEDIA_MAX_PIXELS ({max_pixels} pixels); raise MEDIA_MAX_PIXELS to accept it"
        )


def _pillow_bomb_message(error: Image.DecompressionBombError, max_pixels: int) -> str:
    """Why Pillow's own decompression-bomb check refused an image (its limit applies whatever MEDIA_MAX_PIXELS is:
    Pillow's limit is process-wide, so it is left as it is)."""
    pillow_limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if max_pixels < pillow_limit:
        return f"Image refused as a decompression bomb: {error} It is larger than MEDIA_MAX_PIXELS ({max_pixels}) too"
    return (
        f"Image refused as a decompression bomb: {error} Pillow's limit ({pillow_limit} pixels) applies whatever "
        f"MEDIA_MAX_PIXELS ({max_pixels}) says"
    )


def _described(data: bytes) -> str:
    """What ``data`` holds, for a person to recognise: its length and first bytes (an HTML page shows as such)."""
    if not data:
        return "it is empty (0 bytes)"
    return f"{len(data)} bytes starting {data[:24]!r} (not one of {', '.join(IMAGE_FORMATS)}, or a file cut short)"


def _opencv_reads(data: bytes, opened: Image.Image) -> bool:
    """Whether OpenCV decodes this image: a format it decodes as Pillow does, recognised by the same signature."""
    signature = OPENCV_SIGNATURES.get(opened.format or "")
    return signature is not None and signature(data)


def _opencv_pixels(data: bytes, opened: Image.Image) -> Pixels | None:
    """OpenCV's decode, turned by the EXIF orientation; ``None`` leaves the image to Pillow: a file OpenCV cannot
    decode (cut short: Pillow says why) or sizes otherwise than Pillow's header (an animation's first frame)."""
    import cv2

    orientation = _orientation(opened, data)
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # applied below, from what Pillow reads
    try:
        pixels = cast("Pixels | None", cv2.imdecode(np.frombuffer(data, np.uint8), flags))
    except cv2.error:
        return None
    if pixels is None or (pixels.shape[1], pixels.shape[0]) != opened.size:
        return None
    turned = _turn(orientation)
    return pixels if turned is None else np.ascontiguousarray(turned(pixels))


def _orientation(opened: Image.Image, data: bytes) -> object:
    """The EXIF orientation Pillow's ``exif_transpose`` would apply, read without decoding any pixel."""
    try:
        if opened.format != "PNG":
            return opened.getexif().get(ExifTags.Base.Orientation, 1)  # JPEG and WebP: read with the header
        exif = _png_exif(data)
        if exif is not None:
            opened.info["exif"] = exif  # where Pillow's PNG reader puts it once the pixels are decoded
        # PngImageFile.getexif() decodes the whole image first, in case an eXIf chunk follows the pixels; the base
        # class's reads what is in ``info`` (plus Pillow's fallbacks: a text chunk's EXIF, XMP's orientation).
        return Image.Image.getexif(opened).get(ExifTags.Base.Orientation, 1)
    except BROKEN:  # damaged EXIF: shown unturned, as a browser shows it
        return 1


def _png_exif(data: bytes) -> bytes | None:
    """The last eXIf chunk of a PNG, as Pillow stores it in ``info["exif"]``; ``None`` when there is none.

    Hand-written because Pillow reaches chunks after the pixel data only by decoding it, and OpenCV gives no EXIF.
    A chunk cut short ends the walk.
    """
    if b"eXIf" not in data:  # most PNGs: no chunk to look for
        return None
    found, position = None, len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        start, end = position + 8, position + 8 + length
        if kind == b"IEND" or end > len(data):
            break
        if kind == b"eXIf":
            found = b"Exif\x00\x00" + data[start:end]  # a later eXIf replaces an earlier one, as in Pillow
        position = end + 4  # the chunk's CRC follows its data
    return found


def _turn(orientation: object) -> Callable[[Pixels], Pixels] | None:
    """How ``orientation`` turns pixels; looked up as ``exif_transpose`` does (a rational 6/1 is 6 too)."""
    try:
        return TRANSPOSED.get(orientation)
    except TypeError:  # an unhashable value: no orientation
        return None


def _pillow_pixels(opened: Image.Image) -> Pixels:
    """Pillow's decode, turned by ``exif_transpose`` (Pillow's TIFF reader turns TIFFs itself, then drops the tag)."""
    try:
        rgb = np.asarray(ImageOps.exif_transpose(opened).convert("RGB"))
    except Image.DecompressionBombError as error:  # a GIF frame larger than its header says
        raise MediaError(f"Image refused as a decompression bomb: {error}") from error
    except BROKEN as error:
        raise MediaError(f"Content is not a readable image ({printable(error)})") from error
    return np.ascontiguousarray(rgb[:, :, ::-1])
