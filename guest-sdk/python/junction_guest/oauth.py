"""OAuth2 client credentials without the secret ever reaching the connector.

The operator configures the client id and secret as the backend's HTTP
Basic credentials; the host adds them to a request that carries no
`Authorization` of its own — here, only the token request. The access
token is kept in the backend's state, so every call (each runs in a fresh
instance) and every node shares it until shortly before it expires; a 401
gets one new token and one retry.

    api = OAuthClient(host, token_path="/oauth/v1/token", transport=self.transport)
    found = api.json("POST", "/crm/v3/objects/companies/search", body={"limit": 1})
"""

from __future__ import annotations

import json as _json
import time
from typing import Any, Callable, Optional

from .errors import ConfigError
from .http import Client, Request, Response, Transport

#: The state key the token is kept under.
TOKEN_STATE = "oauth.access-token"
#: Renew this long before the server says a token expires, so that a
#: request never leaves with a token about to lapse.
TOKEN_MARGIN_SECONDS = 60


class OAuthClient:
    """JSON over HTTP with a client-credentials bearer token."""

    def __init__(
        self,
        host,
        token_path: str,
        *,
        scope: Optional[str] = None,
        transport: Optional[Transport] = None,
        clock: Callable[[], float] = time.time,
        state_key: str = TOKEN_STATE,
    ):
        self.host = host
        self.token_path = token_path
        self.scope = scope
        self.clock = clock
        self.state_key = state_key
        self.client = Client(host.base_url, transport=transport)

    def token(self) -> str:
        """The kept token while it is valid, else a new one."""
        kept = self.host.get_state(self.state_key)
        if kept:
            try:
                saved = _json.loads(kept)
                if saved["expires"] > self.clock():
                    return saved["token"]
            except (ValueError, KeyError, TypeError):
                pass
        return self.new_token()

    def new_token(self) -> str:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        answer = self.client.request("POST", self.token_path, form=form).json()
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise ConfigError(f"the token endpoint {self.token_path} answered without an access_token")
        try:
            lifetime = int(answer.get("expires_in", 0))
        except (TypeError, ValueError):
            lifetime = 0
        expires = self.clock() + max(0, lifetime - TOKEN_MARGIN_SECONDS)
        self.host.set_state(self.state_key, _json.dumps({"token": token, "expires": expires}))
        return token

    def send(self, method: str, path: str, *, query=None, body: Any = None) -> Response:
        """The response as it came (statuses are not errors), after one new
        token and one retry on a 401."""
        headers = [("Accept", "application/json")]
        data = b""
        if body is not None:
            headers.append(("Content-Type", "application/json"))
            data = _json.dumps(body).encode()
        url = self.client.url(path, query)
        token = self.token()
        response = self.client.send(Request(method, url, headers + [("Authorization", f"Bearer {token}")], data))
        if response.status == 401:
            self.host.log("info", "the backend refused the access token; getting a new one")
            token = self.new_token()
            response = self.client.send(Request(method, url, headers + [("Authorization", f"Bearer {token}")], data))
        return response

    def json(self, method: str, path: str, **kw) -> Any:
        """`send`, with statuses as contract errors; the JSON answer or None."""
        response = self.send(method, path, **kw).raise_for_status()
        return response.json() if response.body else None
