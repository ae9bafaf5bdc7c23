"""API keys for pages a browser opens (the dashboard): a key given once as ``?key=`` becomes a session cookie.

A plain page load cannot carry ``Authorization: Bearer``, so a path under a guarded prefix accepts that header
(scripts, curl) or a session cookie. Opening ``/dashboard?key=KEY`` with a valid key answers 303 to the same page
without the key in its URL (so the key leaves the address bar and history) and sets an HttpOnly, SameSite=Strict
cookie scoped to the prefix. The cookie holds an HMAC of the key's id under a secret drawn at start-up: it is not
the key, it cannot be forged without the secret, and it dies with the process. Without keys nothing is guarded.
This module knows ASGI scopes, cookies and keys, not pages.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ctxops.serve.auth import KeyStore
from ctxops.serve.errors import APIError

COOKIE = "ctxops_session"
KEY_PARAM = "key"


class BrowserKeyGate:
    """ASGI middleware: requests under ``prefixes`` need an API key (header, session cookie or ``?key=``)."""

    def __init__(self, app: ASGIApp, keys: KeyStore, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.keys = keys
        self.prefixes = prefixes
        self._secret = secrets.token_bytes(32)  # per process: a restart logs every browser out

    def _guards(self, path: str) -> bool:
        return any(path == p or path.startswith(p + "/") for p in self.prefixes)

    def session_value(self, key_id: str) -> str:
        """The cookie value that stands for ``key_id`` in this process."""
        return hmac.new(self._secret, key_id.encode(), hashlib.sha256).hexdigest()

    def _valid_cookie(self, value: str | None) -> bool:
        if not value:
            return False
        found = False
        for ident in self.keys.key_ids:  # compare against every key id: timing reveals nothing
            found |= hmac.compare_digest(self.session_value(ident), value)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled or not self._guards(scope["path"]):
            await self.app(scope, receive, send)
            return
        response = self._check(Request(scope))
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _check(self, request: Request) -> Response | None:
        """None to let the request through, else the response that refuses or logs in."""
        header = request.headers.get("authorization")
        if header:
            try:
                self.keys.check(header)
            except APIError as exc:
                return exc.response()
            return None
        if self._valid_cookie(request.cookies.get(COOKIE)):
            return None
        given = request.query_params.get(KEY_PARAM)
        if given is None:
            return _login_page(request.url.path, "This page needs the server's API key.")
        ident = self.keys.identify(given)
        if ident is None:
            return _login_page(request.url.path, "That key is not one of this server's API keys.")
        rest = [(k, v) for k, v in parse_qsl(request.url.query, keep_blank_values=True) if k != KEY_PARAM]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        redirect = RedirectResponse(target, status_code=303)
        redirect.set_cookie(
            COOKIE, self.session_value(ident), path=self._prefix_of(request.url.path), httponly=True,
            samesite="strict",
        )  # fmt: skip
        return redirect

    def _prefix_of(self, path: str) -> str:
        return next(p for p in self.prefixes if path == p or path.startswith(p + "/"))


def _login_page(path: str, why: str) -> HTMLResponse:
    """401 with a page that says how to get in (the key goes in the URL once, then a cookie carries the session)."""
    where = html.escape(path)
    body = (
        f'<!doctype html><html><head><meta charset="utf-8"><title>ctxops: API key needed</title></head><body>'
        f"<h1>API key needed</h1><p>{html.escape(why)}</p><p>Open <code>{where}?{KEY_PARAM}=YOUR_KEY</code> "
        "once: the key is swapped for a session cookie and removed from the address. Scripts can send "
        "<code>Authorization: Bearer YOUR_KEY</code> instead.</p></body></html>"
    )
    return HTMLResponse(body, status_code=401)
