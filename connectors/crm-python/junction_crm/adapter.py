"""Talks to the CRM's v3 API.

Authentication is OAuth2 client credentials without the secret ever
reaching this code: the operator configures the client id and secret as
the backend's HTTP Basic credentials, which the host adds to requests that
carry no `Authorization` of their own — here, only the token request. The
access token is kept in the backend's state, so every call (each runs in
a fresh instance) and every node shares it until shortly before it
expires; a 401 for an expired or revoked token gets one new token and one
retry.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

from junction_guest.errors import ConfigError, Permanent
from junction_guest.http import Client, Request, Response
from junction_guest.units import Adapter, RemoteRecord

TOKEN_STATE = "oauth.access-token"
# Renew this long before the CRM says a token expires, so that a request
# never leaves with a token about to lapse.
TOKEN_MARGIN_SECONDS = 60
MAX_SEARCH_LIMIT = 200

OBJECTS = {"customer": "contacts"}
PROPERTIES = ["email", "firstname", "lastname", "phone", "city", "country", "lastmodifieddate"]


def _objects(model: str) -> str:
    try:
        return OBJECTS[model]
    except KeyError:
        raise Permanent(f"model {model!r} is not synced by this connector; it knows customer") from None


def _record(obj: Any) -> RemoteRecord:
    if not isinstance(obj, dict) or "id" not in obj:
        raise Permanent(f"the CRM answered with something that is not an object: {str(obj)[:200]}")
    return RemoteRecord(str(obj["id"]), obj, obj.get("updatedAt"))


class CrmAdapter(Adapter):
    def __init__(self, transport=None, clock=time.time):
        self.transport = transport
        self.clock = clock

    # -- HTTP with the token --------------------------------------------

    def _client(self, host) -> Client:
        return Client(host.base_url, transport=self.transport)

    def _new_token(self, host, client: Client) -> str:
        answer = client.request("POST", "/oauth/v1/token", form={"grant_type": "client_credentials"}).json()
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise ConfigError("the CRM's token endpoint answered without an access_token")
        lifetime = answer.get("expires_in", 0)
        expires = self.clock() + max(0, int(lifetime) - TOKEN_MARGIN_SECONDS)
        host.set_state(TOKEN_STATE, json.dumps({"token": token, "expires": expires}))
        return token

    def _token(self, host, client: Client) -> str:
        kept = host.get_state(TOKEN_STATE)
        if kept:
            try:
                saved = json.loads(kept)
                if saved["expires"] > self.clock():
                    return saved["token"]
            except (ValueError, KeyError, TypeError):
                pass
        return self._new_token(host, client)

    def _send(self, host, method: str, path: str, *, query=None, body: Any = None) -> Response:
        client = self._client(host)
        headers = [("Accept", "application/json")]
        data = b""
        if body is not None:
            headers.append(("Content-Type", "application/json"))
            data = json.dumps(body).encode()
        url = client.url(path, query)
        token = self._token(host, client)
        for attempt in (1, 2):
            response = client.send(Request(method, url, headers + [("Authorization", f"Bearer {token}")], data))
            if response.status != 401 or attempt == 2:
                return response
            host.log("info", "the CRM refused the access token; getting a new one")
            token = self._new_token(host, client)
        raise AssertionError("unreachable")

    def _json(self, host, method: str, path: str, **kw) -> Any:
        response = self._send(host, method, path, **kw).raise_for_status()
        return response.json() if response.body else None

    # -- the adapter ----------------------------------------------------

    def check(self, host, settings: dict) -> str:
        found = self._json(host, "POST", "/crm/v3/objects/contacts/search", body={"limit": 1})
        return f"connected to the CRM at {host.base_url}: {found.get('total', 0)} contacts"

    def search(self, host, model: str, filter: dict, cursor: Optional[str], page_size: int):
        body: dict[str, Any] = {
            "limit": max(1, min(page_size, MAX_SEARCH_LIMIT)),
            "properties": PROPERTIES,
            # Oldest change first: a contact changing during the scan
            # moves behind the pages already read.
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        }
        since = filter.get("updated-since")
        if since:
            body["filterGroups"] = [
                {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": since}]}
            ]
        if cursor:
            body["after"] = cursor
        found = self._json(host, "POST", f"/crm/v3/objects/{_objects(model)}/search", body=body)
        records = [_record(o) for o in found.get("results", [])]
        after = ((found.get("paging") or {}).get("next") or {}).get("after")
        return records, (str(after) if after is not None else None)

    def read(self, host, model: str, external_id: str) -> RemoteRecord:
        return _record(
            self._json(
                host,
                "GET",
                f"/crm/v3/objects/{_objects(model)}/{external_id}",
                query={"properties": ",".join(PROPERTIES)},
            )
        )

    def create(self, host, model: str, data: dict) -> str:
        objects = _objects(model)
        response = self._send(host, "POST", f"/crm/v3/objects/{objects}", body=data)
        if response.status == 409:
            # The contact exists already (emails are unique): adopt it and
            # bring it up to date, as a re-run of a lost create would want.
            existing = _existing_id(response)
            if existing is not None:
                host.log("info", f"{objects} {existing} has this email already; updating it instead")
                self.write(host, model, existing, data)
                return existing
        return str(_record(response.raise_for_status().json()).external_id)

    def write(self, host, model: str, external_id: str, data: dict) -> None:
        self._json(host, "PATCH", f"/crm/v3/objects/{_objects(model)}/{external_id}", body=data)

    def delete(self, host, model: str, external_id: str) -> None:
        self._json(host, "DELETE", f"/crm/v3/objects/{_objects(model)}/{external_id}")


def _existing_id(response: Response) -> Optional[str]:
    try:
        message = response.json().get("message", "")
    except Exception:
        return None
    marker = "Existing ID: "
    if marker not in message:
        return None
    tail = message.split(marker, 1)[1].strip()
    digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
    return digits or None
