"""MEDIA_ALLOWED_HOSTS: task URLs cannot reach the backend's own network, in any spelling or through a redirect.

Real HTTP on loopback addresses: 127.0.0.2 stands in for a private host of the backend's network (a metadata service,
an admin page), 127.0.0.3 for an allowed host, 127.0.0.1 for Label Studio. The private host records every request:
the tests check that nothing reached it, not only that the task failed.
"""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from label_studio_yolo.allowed_hosts import HostPolicy, is_public
from label_studio_yolo.errors import MediaError
from label_studio_yolo.media.loader import ImageLoader, MediaSettings
from tests.support.image_server import serve_files
from tests.support.scripted_server import Answer, serve_script


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 6), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def spellings(port: int) -> dict[str, str]:
    """127.0.0.2 written as decimal, octal, hexadecimal, short form and IPv4-mapped IPv6."""
    return {
        "dotted": f"http://127.0.0.2:{port}/secret.png",
        "decimal": f"http://2130706434:{port}/secret.png",
        "octal": f"http://0177.0.0.2:{port}/secret.png",
        "hexadecimal": f"http://0x7f.0.0.2:{port}/secret.png",
        "short": f"http://127.2:{port}/secret.png",
        "ipv4-mapped-ipv6": f"http://[::ffff:127.0.0.2]:{port}/secret.png",
        "trailing-dot": f"http://127.0.0.2.:{port}/secret.png",
    }


@pytest.mark.parametrize("spelling", list(spellings(1)))
def test_a_private_address_is_refused_in_every_spelling(spelling: str) -> None:
    with serve_files(host="127.0.0.2") as private:
        private.add("/secret.png", png())
        port = int(private.url.rsplit(":", 1)[1])

        with pytest.raises(MediaError) as refused:
            ImageLoader(MediaSettings()).read_bytes(spellings(port)[spelling])

    assert private.requests == [], "no request reached the private host"
    if spelling != "trailing-dot":  # urllib3 cannot resolve "127.0.0.2." at all: it fails before connecting
        assert re.search(r"127\.0\.0\.2,? (is )?a loopback address.*MEDIA_ALLOWED_HOSTS=public", str(refused.value))


def test_a_name_that_resolves_to_loopback_is_refused() -> None:
    with serve_files() as private:
        private.add("/secret.png", png())
        port = int(private.url.rsplit(":", 1)[1])

        with pytest.raises(MediaError, match=r"localhost is 127\.0\.0\.1, a loopback address"):
            ImageLoader(MediaSettings()).read_bytes(f"http://localhost:{port}/secret.png")

    assert private.requests == []


def test_a_redirect_from_an_allowed_host_to_a_private_one_is_refused() -> None:
    with serve_files(host="127.0.0.2") as private, serve_script(host="127.0.0.3") as allowed:
        target = private.add("/secret.png", png())
        start = allowed.add("/image.png", Answer(302, headers=(("Location", target),)))
        loader = ImageLoader(MediaSettings(allowed_hosts="public,127.0.0.3"))

        with pytest.raises(MediaError, match=r"Refused to download http://127\.0\.0\.2:\d+/secret\.png"):
            loader.read_bytes(start)

    assert allowed.requests == [("/image.png", None)]
    assert private.requests == []


def test_allowed_hosts_admit_names_addresses_and_networks() -> None:
    with serve_files(host="127.0.0.2") as private:
        url = private.add("/image.png", png())
        for setting in ("public,127.0.0.2", "127.0.0.0/8", "*"):
            assert ImageLoader(MediaSettings(allowed_hosts=setting)).read_bytes(url) == png()
    with serve_files() as local:
        url = local.add("/image.png", png()).replace("127.0.0.1", "localhost")
        assert ImageLoader(MediaSettings(allowed_hosts="localhost")).read_bytes(url) == png()


def test_label_studio_is_allowed_wherever_it_runs_but_only_on_its_own_port() -> None:
    with serve_files(token="key") as label_studio, serve_files() as same_host_other_port:
        label_studio.add("/data/upload/1/a.png", png())
        other = same_host_other_port.add("/secret.png", png())
        loader = ImageLoader(MediaSettings(label_studio_url=label_studio.url, api_key="key"))

        assert loader.read_bytes("/data/upload/1/a.png") == png()
        with pytest.raises(MediaError, match="loopback address"):
            loader.read_bytes(other)

    assert same_host_other_port.requests == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata services
        ("100.64.0.1", False),  # carrier-grade NAT, shared
        ("0.0.0.0", False),  # Linux connects it to this machine
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
    ],
)
def test_public_means_the_public_internet(address: str, public: bool) -> None:
    import ipaddress

    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize("setting", ["public,exa mple.com", "public,,http://x", "10.0.0.0/33"])
def test_a_malformed_setting_names_the_entry(setting: str) -> None:
    with pytest.raises(ValueError, match="MEDIA_ALLOWED_HOSTS entry"):
        HostPolicy.parse(setting)
