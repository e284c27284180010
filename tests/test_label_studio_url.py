"""Which URLs are Label Studio's (the only ones that get its API key), and Label Studio paths made absolute."""

from __future__ import annotations

import pytest

from label_studio_yolo.label_studio_url import LabelStudioURL, NotAURL, origin_of
from label_studio_yolo.logsafe import printable, url_shown

BASE = "https://ls.example.com:8443"


@pytest.mark.parametrize(
    "url",
    [
        "https://ls.example.com:8443/data/upload/1/a.jpg",
        "HTTPS://LS.Example.COM:8443/data/upload/1/a.jpg",
        "https://ls.example.com.:8443/data/upload/1/a.jpg",
        "https://ls.example.com:8443/data/local-files/?d=a/b.jpg",
    ],
)
def test_spellings_of_label_studio_are_label_studio(url: str) -> None:
    assert LabelStudioURL(BASE).owns(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://ls.example.com:8443/data/upload/1/a.jpg",  # the same host and port without TLS: the key in clear text
        "https://ls.example.com/data/upload/1/a.jpg",  # another port
        "https://ls.example.com.evil.net:8443/data/upload/1/a.jpg",
        "https://evil.net/ls.example.com:8443/data/upload/1/a.jpg",
        "https://ls.example.com:8443@evil.net/data/upload/1/a.jpg",  # a user name that looks like the host
        "https://user:pw@ls.example.com:8443/data/upload/1/a.jpg",  # credentials in the URL: never Label Studio's
        "ftp://ls.example.com:8443/data/upload/1/a.jpg",
        "https://ls.example.com:99999/a.jpg",
        "//ls.example.com:8443/a.jpg",
        "not a url",
    ],
)
def test_other_hosts_schemes_and_ports_are_not_label_studio(url: str) -> None:
    assert not LabelStudioURL(BASE).owns(url)


def test_default_ports_and_ipv6_forms_compare_equal() -> None:
    assert LabelStudioURL("https://ls.example.com").owns("https://ls.example.com:443/a.jpg")
    assert LabelStudioURL("http://[::1]:8080").owns("http://[0:0:0:0:0:0:0:1]:8080/a.jpg")
    assert origin_of("http://bücher.example/a") == origin_of("http://xn--bcher-kva.example/a")


def test_a_base_path_confines_label_studio_to_it() -> None:
    label_studio = LabelStudioURL("http://proxy.local/label-studio/")
    assert label_studio.owns("http://proxy.local/label-studio/data/upload/1/a.jpg")
    assert not label_studio.owns("http://proxy.local/label-studio-admin/secret")
    assert not label_studio.owns("http://proxy.local/label-studio/../admin/secret")
    assert not label_studio.owns("http://proxy.local/label-studio/%2e%2e/admin/secret")
    assert label_studio.join("/data/upload/1/a.jpg") == "http://proxy.local/label-studio/data/upload/1/a.jpg"


@pytest.mark.parametrize(
    "path",
    ["/http://127.0.0.2:18082/img/a.png", "//127.0.0.2:18082/img/a.png", "/\\\\127.0.0.2/img/a.png", "/@127.0.0.2/a"],
)
def test_a_label_studio_path_stays_a_path_on_label_studio(path: str) -> None:
    label_studio = LabelStudioURL("http://127.0.0.1:18081")
    joined = label_studio.join(path)
    assert joined.startswith("http://127.0.0.1:18081/")
    assert label_studio.owns(joined)


@pytest.mark.parametrize("base", ["ftp://ls", "http://user:pw@ls:8080", "http://", "ls:8080", "http://ls:port"])
def test_a_base_url_that_is_not_a_server_is_refused(base: str) -> None:
    with pytest.raises(NotAURL):
        LabelStudioURL(base)


def test_log_values_are_one_line_without_passwords_or_signatures() -> None:
    assert printable("7\nERROR forged\r\x1b[2J\u2028") == "7\\nERROR forged\\r\\x1b[2J\\u2028"
    shown = url_shown("https://bob:hunter2@s3.example.com/a.jpg?X-Amz-Signature=deadbeef&X-Amz-Date=1&d=x")
    assert "hunter2" not in shown and "deadbeef" not in shown
    assert shown.startswith("https://bob:***@s3.example.com/a.jpg?") and "X-Amz-Date=1" in shown
    long = printable("x" * 10_000)
    assert len(long) < 200 and "10000 characters" in long
    assert url_shown("data:image/png;base64," + "A" * 10_000) == "data:image/png;base64,...(10022 characters)"
