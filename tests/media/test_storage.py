"""Cloud-storage files (S3, GCS, Azure) are read through Label Studio's resolve endpoint for their task.

``locate`` turns every form Label Studio writes into the same file-of-a-task; the loader reads it from a scripted
Label Studio (real HTTP on loopback) that answers as Label Studio 1.23 does: the bytes (presign off), a 303 to a
presigned URL on the storage host (presign on, a second server on 127.0.0.2), 404 when no storage of the task's
project holds the URI, 424 with its reason when its storage fails. The end-to-end tests run the same against a real
Label Studio and an S3-compatible server (``tests/e2e/test_cloud_storage.py``).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from conftest import SampleImage
from label_studio_yolo.errors import MediaError
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from label_studio_yolo.media.storage import StorageFile, locate
from tests.support.scripted_server import Answer, ScriptedServer, serve_script

KEY = "ls-legacy-key-0123456789"
URI = "s3://imgs/photos/bus.png"
FILEURI = base64.urlsafe_b64encode(URI.encode()).decode()
EXPIRED = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"


@pytest.mark.parametrize("uri", [URI, "gs://b/a.jpg", "azure-blob://container/a.jpg", "azure-spi://container/a.jpg"])
def test_each_storage_scheme_is_read_through_its_task(uri: str) -> None:
    located = locate(uri, 7)
    assert located == StorageFile(uri, task_id=7)
    fileuri = base64.urlsafe_b64encode(uri.encode()).decode()
    assert isinstance(located, StorageFile) and located.resolve_path == f"/tasks/7/resolve/?fileuri={fileuri}"


@pytest.mark.parametrize(
    "value",
    [
        f"/tasks/5/resolve/?fileuri={FILEURI}",
        f"http://label-studio.internal:8080/tasks/5/resolve/?fileuri={FILEURI}",
        f"https://ls.example.com/sub/path/tasks/5/presign/?fileuri={FILEURI}",
        f"/projects/3/resolve/?fileuri={FILEURI}",
        "/tasks/5/resolve/?fileuri=s3%3A%2F%2Fimgs%2Fphotos%2Fbus.png",  # percent-encoded, as older versions wrote
    ],
)
def test_label_studio_s_resolve_urls_are_read_through_the_task_they_belong_to(value: str) -> None:
    """Whatever host or task the value names, the file is read from our Label Studio for the task holding it."""
    assert locate(value, 7) == StorageFile(URI, task_id=7)
    assert locate(value, "7") == StorageFile(URI, task_id=7)


def test_without_a_task_the_resolve_url_s_own_task_or_project_is_used() -> None:
    assert locate(f"/tasks/5/resolve/?fileuri={FILEURI}") == StorageFile(URI, task_id=5)
    assert locate(f"/projects/3/resolve/?fileuri={FILEURI}") == StorageFile(URI, project_id=3)
    assert StorageFile(URI, project_id=3).resolve_path == f"/projects/3/resolve/?fileuri={FILEURI}"


@pytest.mark.parametrize(
    "value",
    [
        "/data/upload/1/a.png",
        "http://example.com/tasks/5/resolve/",  # no fileuri
        f"ftp://example.com/tasks/5/resolve/?fileuri={FILEURI}",
        "https://example.com/s3://imgs/a.png",
        "data:image/png;base64,AAAA",
        None,
        42,
    ],
)
def test_other_values_are_left_as_they_are(value: object) -> None:
    assert locate(value, 7) == value


@pytest.mark.parametrize("task_id", [None, True, -3, 0, "7a", "٣", 1.5])
def test_a_task_id_that_is_not_label_studio_s_leaves_the_file_without_a_task(task_id: object) -> None:
    located = locate(URI, task_id)
    assert located == StorageFile(URI) and isinstance(located, StorageFile) and located.resolve_path is None


@dataclass
class Servers:
    """A scripted Label Studio and a scripted storage host on another address."""

    label_studio: ScriptedServer
    storage: ScriptedServer

    def loader(self, allowed: str = "public,127.0.0.2", base_path: str = "") -> ImageLoader:
        settings = MediaSettings(self.label_studio.url + base_path, KEY, allowed_hosts=allowed, timeout=5)
        return ImageLoader(settings)

    def presigned(self, path: str = "/imgs/photos/bus.png") -> str:
        """The storage URL Label Studio redirects to (a presigned S3 URL's query)."""
        return f"{path}?X-Amz-Credential=AKIA%2F20261207&X-Amz-Signature=0123456789abcdef&X-Amz-Expires=60"


RESOLVE = f"/tasks/7/resolve/?fileuri={FILEURI}"


@pytest.fixture
def servers() -> Iterator[Servers]:
    with serve_script() as label_studio, serve_script("127.0.0.2") as storage:
        yield Servers(label_studio, storage)


def redirect_to(url: str) -> Answer:
    return Answer(303, headers=(("Location", url),))


def test_presign_off_label_studio_serves_the_bytes_with_its_key(servers: Servers, sample: SampleImage) -> None:
    servers.label_studio.add(RESOLVE, Answer(body=sample.path.read_bytes()))

    image = servers.loader().load(locate(URI, 7))

    assert image.size == (192, 144)
    assert servers.label_studio.auth_sent_to(RESOLVE) == [f"Token {KEY}"]


def test_presign_on_the_presigned_url_is_followed_without_the_key(servers: Servers, sample: SampleImage) -> None:
    presigned = servers.presigned()
    servers.label_studio.add(RESOLVE, redirect_to(servers.storage.url + presigned))
    servers.storage.add(presigned, Answer(body=sample.path.read_bytes()))

    assert servers.loader().load(locate(URI, 7)).size == (192, 144)
    assert servers.storage.auth_sent_to(presigned) == [None], "Label Studio's key never reaches the storage"


def test_label_studio_under_a_base_path_serves_its_resolve_endpoint(servers: Servers, sample: SampleImage) -> None:
    servers.label_studio.add(f"/ls{RESOLVE}", Answer(body=sample.path.read_bytes()))

    assert servers.loader(base_path="/ls").load(locate(f"https://ls.example.com/ls{RESOLVE}")).size == (192, 144)


def test_a_storage_host_media_allowed_hosts_refuses_is_named_with_the_setting_to_add(servers: Servers) -> None:
    presigned = servers.presigned()
    servers.label_studio.add(RESOLVE, redirect_to(servers.storage.url + presigned))

    with pytest.raises(MediaError) as refused:
        servers.loader(allowed="public").read_bytes(locate(URI, 7))

    message = str(refused.value)
    assert message.startswith(f"Could not read cloud storage file {URI} through Label Studio: Refused to download")
    assert "127.0.0.2 is a loopback address" in message and "MEDIA_ALLOWED_HOSTS=public,127.0.0.2" in message
    assert "0123456789abcdef" not in message, "the presigned URL's signature is not logged"
    assert servers.storage.requests == [], "nothing was sent to the refused host"


def test_a_presigned_url_that_expired_is_asked_for_again_once(
    servers: Servers, sample: SampleImage, caplog: pytest.LogCaptureFixture
) -> None:
    old, new = servers.presigned("/imgs/photos/bus.png?old=1"), servers.presigned("/imgs/photos/bus.png?new=1")
    servers.label_studio.add(RESOLVE, redirect_to(servers.storage.url + old), redirect_to(servers.storage.url + new))
    servers.storage.add(old, Answer(403, EXPIRED, headers=(("Content-Type", "application/xml"),)))
    servers.storage.add(new, Answer(body=sample.path.read_bytes()))

    with caplog.at_level(logging.INFO):
        image = servers.loader().load(locate(URI, 7))

    assert image.size == (192, 144)
    assert len(servers.label_studio.auth_sent_to(RESOLVE)) == 2
    assert f"Cloud storage file {URI}: the storage refused Label Studio's presigned URL (HTTP 403 (AccessDenied: " in (
        caplog.text
    )


def test_a_storage_that_refuses_twice_is_named_with_what_to_check(servers: Servers) -> None:
    presigned = servers.presigned()
    servers.label_studio.add(RESOLVE, redirect_to(servers.storage.url + presigned))
    servers.storage.add(presigned, Answer(403, EXPIRED))

    with pytest.raises(MediaError) as refused:
        servers.loader().read_bytes(locate(URI, 7))

    assert str(refused.value) == (
        f"The storage refused Label Studio's presigned URL for {URI} twice (HTTP 403 (AccessDenied: Request has "
        "expired)): the object may be gone (S3 answers 403 for a missing key when the storage's credentials cannot "
        "list the bucket), or those credentials are no longer valid; check both in Label Studio (Settings -> Cloud "
        "Storage)"
    )
    assert len(servers.label_studio.auth_sent_to(RESOLVE)) == 2, "resolved again once, not more"


@pytest.mark.parametrize(
    ("label_studio_answer", "storage_answer", "reason"),
    [
        (Answer(404), None, f"Label Studio has no cloud storage that holds {URI} (HTTP 404 from its resolve endpoint)"),
        (
            Answer(424, b'{"error": "Storage stream failed while proxying data", "detail": "InvalidAccessKeyId"}'),
            None,
            f"Label Studio could not read {URI} from its storage (HTTP 424 (InvalidAccessKeyId)): check the "
            "storage's credentials",
        ),
        (Answer(403, b'{"detail": "forbidden"}'), None, f"Label Studio refused to serve {URI} (HTTP 403)"),
        (None, Answer(404), f"The storage has no object {URI} (HTTP 404 for Label Studio's presigned URL)"),
    ],
    ids=["storage-removed", "storage-credentials", "no-permission", "object-deleted"],
)
def test_each_failure_says_which_file_and_why(
    servers: Servers, label_studio_answer: Answer | None, storage_answer: Answer | None, reason: str
) -> None:
    presigned = servers.presigned()
    servers.label_studio.add(RESOLVE, label_studio_answer or redirect_to(servers.storage.url + presigned))
    if storage_answer:
        servers.storage.add(presigned, storage_answer)

    with pytest.raises(MediaError) as failed:
        servers.loader().read_bytes(locate(URI, 7))

    assert str(failed.value).startswith(reason), str(failed.value)


def test_a_file_without_its_task_or_label_studio_cannot_be_read(servers: Servers) -> None:
    with pytest.raises(MediaError, match="read through its task in Label Studio; the task has no id"):
        servers.loader().read_bytes(URI)
    with pytest.raises(MediaError, match="served by Label Studio, but its URL is unknown: set LABEL_STUDIO_URL"):
        ImageLoader(MediaSettings()).read_bytes(locate(URI, 7))


@pytest.fixture
def sample(sample_images: list[SampleImage]) -> SampleImage:
    return sample_images[0]
