"""The page's forms are the only way to post to its buttons: no token, a wrong one, or another site's origin is 403."""

from __future__ import annotations

from flask.testing import FlaskClient

from label_studio_yolo.serving.csrf import COOKIE, FIELD

UNPIN = "/ui/projects/3/unpin"


def page_token(client: FlaskClient) -> str:
    """Open a project's page as a browser does; the token its cookie carries."""
    answer = client.get("/ui/projects/3")
    assert answer.status_code == 200
    [cookie] = [value for value in answer.headers.getlist("Set-Cookie") if value.startswith(f"{COOKIE}=")]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie, cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert f'name="{FIELD}" value="{token}"' in answer.get_data(as_text=True), "the forms repeat it"
    return token


def test_the_page_s_own_form_post_is_done(client: FlaskClient) -> None:
    token = page_token(client)
    answer = client.post(
        UNPIN, data={FIELD: token}, headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
    )
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/ui/projects/3?done=unpinned")


def test_a_post_without_the_cookie_s_token_is_refused(client: FlaskClient) -> None:
    token = page_token(client)
    assert client.post(UNPIN, data={FIELD: "guessed"}).status_code == 403
    client.delete_cookie(COOKIE, path="/ui")
    refused = client.post(UNPIN, data={FIELD: token})
    assert refused.status_code == 403 and "reload the page" in refused.get_data(as_text=True)


def test_a_post_another_site_made_is_refused_even_with_the_token(client: FlaskClient) -> None:
    token = page_token(client)
    for headers in ({"Origin": "http://attacker.example"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        answer = client.post(UNPIN, data={FIELD: token}, headers=headers)
        assert answer.status_code == 403, headers
