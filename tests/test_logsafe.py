"""No log line or traceback shows a URL's password or a presigned URL's credentials, whatever wrote it."""

from __future__ import annotations

import logging

import pytest

from label_studio_yolo.logging_setup import HideSecrets, hide_secrets_in
from label_studio_yolo.logsafe import text_shown, url_shown, without_secrets

SECRETS = ("hunter2", "sekrit-signature", "t0ken", "AKIA-credential")


@pytest.mark.parametrize(
    "text",
    [
        # requests quotes the path and query of the URL it failed on, after the URL the backend shows redacted
        "HTTPSConnectionPool(host='h', port=1): Max retries exceeded with url: "
        "/a.png?X-Amz-Signature=sekrit-signature&X-Amz-Credential=AKIA-credential&token=t0ken (Caused by SSLError",
        "Failed to parse: http://alice:hunter2@[::1/a.png",  # urllib3
        "Invalid IPv6 URL: https://alice:hunter2@[fe80::1/x?sig=sekrit-signature",
        "redirect to https://bucket.example.com/k?X-Amz-Credential=AKIA-credential&x-amz-security-token=t0ken then",
        "'https://alice:hunter2@example.com/a.jpg?access_token=t0ken'",
    ],
)
def test_secrets_inside_any_text_are_hidden(text: str) -> None:
    shown = without_secrets(text)

    assert not [secret for secret in SECRETS if secret in shown], shown
    assert "***" in shown
    assert not [secret for secret in SECRETS if secret in text_shown(text, 1000)]


def test_a_url_that_does_not_parse_keeps_no_password() -> None:
    assert url_shown("http://alice:hunter2@[fe80::1/x?token=t0ken") == "http://alice:***@[fe80::1/x?token=***"


def test_text_without_secrets_is_unchanged() -> None:
    text = "Task 7: no prediction: https://example.com/a.jpg?width=3&X-Amz-Date=20261207 HTTP 404 (user@example.com)"
    assert without_secrets(text) == text


def test_every_line_and_traceback_through_a_protected_handler_hides_secrets(caplog: pytest.LogCaptureFixture) -> None:
    """What a library logs (an exception's text, a traceback) passes the same filter as the backend's own lines."""
    caplog.handler.addFilter(HideSecrets())
    logger = logging.getLogger("some.library")
    try:
        raise ValueError("could not fetch https://alice:hunter2@example.com/a.png?X-Amz-Signature=sekrit-signature")
    except ValueError:
        logger.exception("download of %s failed", "https://h/a.png?token=t0ken")

    text = caplog.text
    assert "download of https://h/a.png?token=*** failed" in text
    assert "ValueError: could not fetch https://alice:***@example.com/a.png?X-Amz-Signature=***" in text
    assert not [secret for secret in SECRETS if secret in text], text


def test_the_servers_handlers_are_protected_once() -> None:
    handler = logging.StreamHandler()
    logger = logging.getLogger("gunicorn.error")
    logger.addHandler(handler)
    try:
        hide_secrets_in()
        hide_secrets_in()
        assert sum(isinstance(each, HideSecrets) for each in handler.filters) == 1
    finally:
        logger.removeHandler(handler)
