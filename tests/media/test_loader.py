"""Loading task images: data: URIs, Label Studio uploads over real HTTP, other hosts, local files and bad input."""

from __future__ import annotations

import base64
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from label_studio_yolo.errors import MediaError
from label_studio_yolo.media.decode import decode_image
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from tests.support.image_server import serve_files

LOOPBACK_TOO = "public,127.0.0.1"
"""MEDIA_ALLOWED_HOSTS for loaders that fetch from the tests' servers on 127.0.0.1 as if they were public."""


def png_bytes(width: int = 30, height: int = 20) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_png(path: Path, width: int = 30, height: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(width, height))
    return path


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=2)
        for connection in accepted:
            connection.close()
        listener.close()


def test_data_uri_png_loads_with_its_size():
    uri = "data:image/png;base64," + base64.b64encode(png_bytes(31, 17)).decode()

    image = ImageLoader(MediaSettings()).load(uri)

    assert image.size == (31, 17)
    assert image.mode == "RGB"


def test_malformed_data_uri_fails():
    with pytest.raises(MediaError, match="Malformed data: URI"):
        ImageLoader(MediaSettings()).load("data:image/png;base64")


def test_data_uri_of_text_fails_as_not_an_image():
    with pytest.raises(MediaError, match="not a readable image"):
        ImageLoader(MediaSettings()).load("data:text/plain,hello%20world")


def test_upload_is_fetched_from_label_studio_with_token():
    with serve_files(token="secret-key") as server:
        server.add("/data/upload/1/cat.png", png_bytes(40, 30))
        loader = ImageLoader(MediaSettings(label_studio_url=server.url, api_key="secret-key"))

        image = loader.load("/data/upload/1/cat.png")

    assert image.size == (40, 30)
    assert server.requests == [("/data/upload/1/cat.png", "Token secret-key")]


def test_wrong_api_key_says_to_set_label_studio_api_key():
    with serve_files(token="secret-key") as server:
        server.add("/data/upload/1/cat.png", png_bytes())
        loader = ImageLoader(MediaSettings(label_studio_url=server.url, api_key="wrong-key"))

        with pytest.raises(MediaError, match="LABEL_STUDIO_API_KEY") as error:
            loader.load("/data/upload/1/cat.png")

    assert "401" in str(error.value)


def test_credentials_are_not_sent_to_another_host():
    with serve_files(token="secret-key") as label_studio, serve_files() as other:
        url = other.add("/images/dog.png", png_bytes(12, 8))
        loader = ImageLoader(
            MediaSettings(label_studio_url=label_studio.url, api_key="secret-key", allowed_hosts=LOOPBACK_TOO)
        )

        image = loader.load(url)

    assert image.size == (12, 8)
    assert other.requests == [("/images/dog.png", None)]
    assert label_studio.requests == []


def test_absolute_url_on_label_studio_host_is_sent_with_token():
    with serve_files(token="secret-key") as server:
        url = server.add("/data/upload/2/a.png", png_bytes())
        loader = ImageLoader(MediaSettings(label_studio_url=server.url, api_key="secret-key"))

        loader.load(url)

    assert server.requests == [("/data/upload/2/a.png", "Token secret-key")]


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_status_is_reported(status):
    with serve_files() as server:
        url = server.add("/images/broken.png", b"nope", status=status)

        with pytest.raises(MediaError, match=str(status)):
            ImageLoader(MediaSettings(allowed_hosts=LOOPBACK_TOO)).load(url)


def test_label_studio_path_without_url_says_to_set_label_studio_url():
    with pytest.raises(MediaError, match="LABEL_STUDIO_URL"):
        ImageLoader(MediaSettings(api_key="secret-key")).load("/data/upload/1/cat.png")


def test_answer_larger_than_max_bytes_is_refused():
    with serve_files() as server:
        url = server.add("/images/big.png", png_bytes(300, 300))

        with pytest.raises(MediaError, match="MEDIA_MAX_BYTES"):
            ImageLoader(MediaSettings(max_bytes=200, allowed_hosts=LOOPBACK_TOO)).load(url)


def test_server_that_never_answers_times_out(silent_server):
    loader = ImageLoader(MediaSettings(timeout=0.5, allowed_hosts=LOOPBACK_TOO))
    started = time.monotonic()

    with pytest.raises(MediaError, match="Could not download"):
        loader.load(silent_server + "/slow.png")

    assert time.monotonic() - started < 3


def test_local_file_under_document_root_is_read_from_disk(tmp_path):
    write_png(tmp_path / "sub" / "a.png", 25, 15)
    loader = ImageLoader(MediaSettings(document_root=tmp_path))

    assert loader.load("/data/local-files/?d=sub/a.png").size == (25, 15)


def test_local_file_outside_document_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    write_png(tmp_path / "secret.png")
    loader = ImageLoader(MediaSettings(document_root=root))

    with pytest.raises(MediaError, match="outside"):
        loader.load("/data/local-files/?d=../secret.png")


def test_missing_local_file_fails(tmp_path):
    loader = ImageLoader(MediaSettings(document_root=tmp_path))

    with pytest.raises(MediaError, match="does not exist"):
        loader.load("/data/local-files/?d=sub/missing.png")


def test_local_file_with_percent_in_its_name_is_found(tmp_path):
    write_png(tmp_path / "a%20b.png", 10, 10)
    loader = ImageLoader(MediaSettings(document_root=tmp_path))

    assert loader.load("/data/local-files/?d=a%2520b.png").size == (10, 10)


def test_local_files_path_without_document_root_is_fetched_from_label_studio():
    with serve_files(token="secret-key") as server:
        server.add("/data/local-files/?d=sub/a.png", png_bytes(22, 11))
        loader = ImageLoader(MediaSettings(label_studio_url=server.url, api_key="secret-key"))

        image = loader.load("/data/local-files/?d=sub/a.png")

    assert image.size == (22, 11)
    assert server.requests == [("/data/local-files/?d=sub/a.png", "Token secret-key")]


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (40, 20), (30, 60, 220)).save(path, exif=exif)

    image = ImageLoader(MediaSettings(document_root=tmp_path)).load("/data/local-files/?d=rotated.jpg")

    assert image.size == (20, 40)


@pytest.mark.parametrize("value", [None, 42, "", "   ", ["/data/upload/1.png"]])
def test_value_that_is_not_a_url_fails(value):
    with pytest.raises(MediaError, match="not an image URL"):
        ImageLoader(MediaSettings()).load(value)


def test_relative_path_not_under_label_studio_fails():
    with pytest.raises(MediaError, match="Unsupported image location"):
        ImageLoader(MediaSettings(label_studio_url="http://127.0.0.1:9")).load("images/cat.png")


def test_decompression_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)

    with pytest.raises(MediaError, match="decompression bomb"):
        decode_image(png_bytes(40, 40))


def test_bytes_that_are_not_an_image_fail():
    with pytest.raises(MediaError, match="not a readable image"):
        decode_image(b"<html>login page</html>")
