"""Forged form posts from other sites are refused: a double-submit token, and the browser's own word on the origin.

A browser resends a user's Basic credentials to this backend whatever site a form came from, so credentials alone
do not show that a person pressed one of the page's buttons. Each page sets a random token in a cookie that only
this origin receives (``SameSite=Strict``, ``HttpOnly``) and writes the same token into its forms; a post whose
field does not match its cookie is refused, and so is one that the browser says came from another site
(``Sec-Fetch-Site`` or ``Origin``). The token needs no server-side state, so any replica accepts any other's pages.

Example:
    >>> token = page_token()                 # in a page view: goes into the form and, by remember_token, the cookie
    >>> refusal = forged_post_reason()       # in a post: None, or why it is refused
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from flask import Response, g, request

COOKIE = "label_studio_yolo_csrf"
"""The cookie that holds the token."""

FIELD = "csrf_token"
"""The hidden form field that repeats it."""

TOKEN_BYTES = 32
"""Random bytes of a token (URL-safe base64 in the cookie and the form)."""

COOKIE_PATH = "/ui"
"""The page's routes: the cookie is sent nowhere else."""


def page_token() -> str:
    """The token for this request's forms: the browser's, or a new one (set by :func:`remember_token`)."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 2 * TOKEN_BYTES:
        token = g.setdefault("new_csrf_token", secrets.token_urlsafe(TOKEN_BYTES))
    return token


def remember_token(response: Response) -> Response:
    """Set the cookie when :func:`page_token` made a new token for this request."""
    token = g.pop("new_csrf_token", None)
    if token:
        response.set_cookie(COOKIE, token, path=COOKIE_PATH, httponly=True, samesite="Strict")
    return response


def forged_post_reason() -> str | None:
    """Why this form post cannot be one of the page's own, or None."""
    fetched_from = request.headers.get("Sec-Fetch-Site")
    if fetched_from is not None and fetched_from != "same-origin":
        return f"the browser says this post came from another site ({fetched_from})"
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return "the post's Origin is not this backend"
    cookie, field = request.cookies.get(COOKIE, ""), request.form.get(FIELD, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), field.encode()):
        return "the form's token does not match this browser's: reload the page and try again"
    return None
