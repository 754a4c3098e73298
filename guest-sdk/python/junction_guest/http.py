"""An HTTP client with JSON helpers that speaks the contract's errors.

Inside a component requests go out through `wasi:http` (the host checks
each one against the backend's allowlist and adds its credentials); in
native tests through `urllib`, so an adapter can be tried against a real
server with plain pytest. Statuses become contract errors the same way in
both: 429 → rate-limited and 503 → retryable after `Retry-After`, other
5xx → retryable, 404 → not-found, 401/403 → config, other 4xx →
permanent. A request the host denied is a config error naming the host.
"""

from __future__ import annotations

import email.utils
import json as _json
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlencode, urlsplit

from .errors import (
    DEFAULT_RETRY_SECONDS,
    ConfigError,
    NotFound,
    Permanent,
    RateLimited,
    Retryable,
)


@dataclass
class Request:
    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> Optional[str]:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise Permanent(f"the backend's answer is not JSON: {e}") from None

    def retry_after(self, now: Optional[float] = None) -> Optional[int]:
        """`Retry-After` in seconds from now (delta-seconds or an HTTP date)."""
        value = (self.header("retry-after") or "").strip()
        if not value:
            return None
        if value.isdigit():
            return int(value)
        try:
            at = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
        now = time.time() if now is None else now
        return max(0, int(at - now))

    def message(self) -> str:
        """The backend's error text: `message` (or a problem's `title`) of a
        JSON body with its `description` or `detail` when there is one
        (Tryton puts the particulars there), else the body."""
        try:
            body = _json.loads(self.body)
        except ValueError:
            body = None

        def field(*names):
            for name in names:
                value = body.get(name) if isinstance(body, dict) else None
                if isinstance(value, str) and value.strip():
                    return value.strip()
            return None

        text = field("message", "title")
        more = field("description", "detail")
        if text is not None and more is not None and more != text:
            text = f"{text}: {more}"
        if text is None:
            text = self.text()
        return text if len(text) <= 300 else text[:300] + "…"

    def raise_for_status(self) -> "Response":
        """The response if it is a success (2xx), else the contract error."""
        status = self.status
        if 200 <= status < 300:
            return self
        message = f"HTTP {status}: {self.message()}"
        if status == 429:
            raise RateLimited(message, self.retry_after() or 60)
        if status == 503:
            raise Retryable(message, self.retry_after() or DEFAULT_RETRY_SECONDS)
        if status == 404:
            raise NotFound(message)
        if status in (401, 403):
            raise ConfigError(
                f"{message} (the backend refused the credentials the operator configured)"
            )
        if 400 <= status < 500:
            raise Permanent(message)
        raise Retryable(message)


class TransportError(Exception):
    """A request that got no answer."""

    def __init__(self, host: str, code: str, denied: bool = False):
        super().__init__(code)
        self.host, self.code, self.denied = host, code, denied

    def to_contract(self):
        code = self.code.lower().replace("-", "").replace("_", "")
        if self.denied and ("destinationipprohibited" in code or "destinationipunroutable" in code):
            return ConfigError(
                f"request to {self.host} denied by the host ({self.code}): it is an internal address; "
                f"ask the operator to list {self.host} in the backend's allow_internal"
            )
        if self.denied:
            return ConfigError(
                f"request to {self.host} denied by the host ({self.code}); "
                "ask the operator to allow it in the backend's allowlist"
            )
        return Retryable(f"request to {self.host} failed ({self.code})")


Transport = Callable[[Request], Response]


def urllib_transport(request: Request, timeout: float = 30.0) -> Response:
    """Native requests, for tests outside the sandbox."""
    import urllib.error
    import urllib.request

    host = urlsplit(request.url).netloc
    req = urllib.request.Request(
        request.url,
        data=request.body or None,
        method=request.method,
        headers=dict(request.headers),
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, list(r.headers.items()), r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, list(e.headers.items()), e.read())
    except (urllib.error.URLError, OSError) as e:
        raise TransportError(host, str(getattr(e, "reason", e))) from None


def default_transport() -> Transport:
    """`wasi:http` inside a component, `urllib` natively."""
    # Inside a component every module is imported when it is built (at
    # run time there is no filesystem to import from): `component` imports
    # `_wasi_http` then if the world has outgoing HTTP.
    wasi = sys.modules.get(f"{__package__}._wasi_http")
    if wasi is not None:
        return wasi.send
    if "wit_world" in sys.modules:
        return _no_http
    return urllib_transport


def _no_http(request: Request) -> Response:
    raise ConfigError(
        "this component cannot send HTTP requests: build it for a world that imports wasi:http/outgoing-handler"
    )


class Client:
    """JSON over HTTP against one base URL; every failure is a contract error."""

    def __init__(
        self,
        base_url: str,
        headers: Optional[dict[str, str]] = None,
        transport: Optional[Transport] = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers or {})
        self.transport = transport or default_transport()

    def url(self, path: str, query: Optional[dict[str, Any]] = None) -> str:
        url = path if "://" in path else f"{self.base_url}/{path.lstrip('/')}"
        if query:
            url += ("&" if "?" in url else "?") + urlencode(
                {k: v for k, v in query.items() if v is not None}
            )
        return url

    def send(self, request: Request) -> Response:
        """Send as is; transport failures become contract errors, statuses do not."""
        try:
            return self.transport(request)
        except TransportError as e:
            raise e.to_contract() from None

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Optional[dict[str, Any]] = None,
        json: Any = None,
        form: Optional[dict[str, str]] = None,
        headers: Optional[dict[str, str]] = None,
    ) -> Response:
        all_headers = {**self.headers, **(headers or {})}
        body = b""
        if json is not None:
            body = _json.dumps(json).encode()
            all_headers.setdefault("Content-Type", "application/json")
        elif form is not None:
            body = urlencode(form).encode()
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        all_headers.setdefault("Accept", "application/json")
        response = self.send(
            Request(method.upper(), self.url(path, query), list(all_headers.items()), body)
        )
        return response.raise_for_status()

    def get_json(self, path: str, **kw) -> Any:
        return self.request("GET", path, **kw).json()

    def post_json(self, path: str, json: Any = None, **kw) -> Any:
        r = self.request("POST", path, json=json, **kw)
        return r.json() if r.body else None

    def patch_json(self, path: str, json: Any = None, **kw) -> Any:
        r = self.request("PATCH", path, json=json, **kw)
        return r.json() if r.body else None

    def delete(self, path: str, **kw) -> None:
        self.request("DELETE", path, **kw)
