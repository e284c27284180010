"""serving/guard.py on its own: Basic credentials, the body limit and the WSGI middleware, without the app.

The HTTP tests (test_auth.py, test_slow_clients.py) run these rules through gunicorn; here each rule is pinned down
at the unit that decides it, with a real Werkzeug test client in front of a bare WSGI app.
"""

from __future__ import annotations

import base64
import io
import json
import logging

import pytest
from werkzeug.test import Client
from werkzeug.wrappers import Response

from label_studio_yolo.serving.guard import RequestGuard, credentials_problem, header_refusal

CREDENTIALS = ("label-studio", "s3cr\u00e9t")
"""A password with a character outside ASCII: UTF-8 and Latin-1 encode it differently."""


def basic(user: str, password: str, encoding: str = "utf-8") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode(encoding)).decode("ascii")


def echo_app(environ, start_response):
    """A WSGI app answering with the length of the body it received."""
    body = environ["wsgi.input"].read()
    return Response(json.dumps({"received": len(body)}), mimetype="application/json")(environ, start_response)


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_the_right_credentials_pass_in_utf8_and_in_latin1(encoding: str) -> None:
    assert credentials_problem(basic(*CREDENTIALS, encoding=encoding), CREDENTIALS) is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "no Authorization header"),
        ("Bearer abc", "Authorization is not Basic"),
        ("Basic !!!not-base64", "malformed Basic credentials"),
        ("Basic " + base64.b64encode(b"no-colon").decode(), "malformed Basic credentials"),
        (basic("label-studio", "wrong"), "wrong user or password"),
        (basic("someone-else", CREDENTIALS[1]), "wrong user or password"),
    ],
)
def test_each_bad_header_is_refused_with_its_own_reason(header: str | None, reason: str) -> None:
    assert credentials_problem(header, CREDENTIALS) == reason


def test_credentials_are_checked_before_the_size_so_a_stranger_learns_nothing_of_the_limit() -> None:
    refusal = header_refusal(None, "999999", CREDENTIALS, max_bytes=10)

    assert refusal is not None and refusal.status == 401
    assert refusal.headers["WWW-Authenticate"].startswith('Basic realm="label-studio-yolo"')


def test_a_declared_length_over_the_limit_is_refused_and_one_at_the_limit_is_not() -> None:
    over = header_refusal(None, "11", None, max_bytes=10)

    assert over is not None and over.status == 413 and "MAX_REQUEST_BYTES (10 bytes)" in over.message
    assert header_refusal(None, "10", None, max_bytes=10) is None


def test_the_middleware_answers_json_and_logs_the_refusal_without_the_header(caplog) -> None:
    client = Client(RequestGuard(echo_app, CREDENTIALS, max_bytes=100))
    secret = basic("label-studio", "wrong-password")

    with caplog.at_level(logging.WARNING, logger="label_studio_yolo.serving.guard"):
        answer = client.post(
            "/predict", headers={"Authorization": secret}, data=b"{}", environ_overrides={"PATH_INFO": "/predict\nx"}
        )

    assert answer.status_code == 401
    assert answer.json["status"] == "error" and "Basic Authentication" in answer.json["error"]
    assert "Refused POST /predict\\nx from" in caplog.text  # the newline escaped: no forged second line
    assert "wrong-password" not in caplog.text and secret not in caplog.text


def test_the_middleware_passes_a_good_request_whole() -> None:
    client = Client(RequestGuard(echo_app, CREDENTIALS, max_bytes=100))

    answer = client.post("/predict", headers={"Authorization": basic(*CREDENTIALS)}, data=b"x" * 100)

    assert answer.status_code == 200 and answer.json == {"received": 100}


def test_a_body_without_a_length_is_counted_and_refused_one_byte_past_the_limit() -> None:
    client = Client(RequestGuard(echo_app, None, max_bytes=100))

    def unframed(size: int) -> dict[str, object]:
        return {"wsgi.input": io.BytesIO(b"x" * size), "wsgi.input_terminated": True}

    refused = client.post("/predict", environ_overrides=unframed(101))
    passed = client.post("/predict", environ_overrides=unframed(100))

    assert refused.status_code == 413
    assert passed.status_code == 200 and passed.json == {"received": 100}
