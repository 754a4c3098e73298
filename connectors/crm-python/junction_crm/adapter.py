"""Talks to the CRM's v3 API, authenticated with OAuth2 client credentials
(`junction_guest.oauth`: the host adds the client's id and secret to the
token request only; the token is shared through the backend's state)."""

from __future__ import annotations

import time
from typing import Any, Optional

from junction_guest import paging
from junction_guest.errors import Permanent
from junction_guest.http import Response
from junction_guest.oauth import TOKEN_STATE, OAuthClient
from junction_guest.units import Adapter, Lookup, RemoteRecord

__all__ = ["TOKEN_STATE", "CrmAdapter"]

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


class CrmAdapter(Adapter, Lookup):
    def __init__(self, transport=None, clock=time.time):
        self.transport = transport
        self.clock = clock

    def _api(self, host) -> OAuthClient:
        return OAuthClient(host, "/oauth/v1/token", transport=self.transport, clock=self.clock)

    def _send(self, host, method: str, path: str, **kw) -> Response:
        return self._api(host).send(method, path, **kw)

    def _json(self, host, method: str, path: str, **kw) -> Any:
        return self._api(host).json(method, path, **kw)

    # -- the adapter ----------------------------------------------------

    def check(self, host, settings: dict) -> str:
        found = self._json(host, "POST", "/crm/v3/objects/contacts/search", body={"limit": 1})
        return f"connected to the CRM at {host.base_url}: {found.get('total', 0)} contacts"

    def search(self, host, model: str, filter: dict, cursor: Optional[str], page_size: int):
        body: dict[str, Any] = {
            "limit": paging.page_size(page_size, MAX_SEARCH_LIMIT),
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
        return paging.cursor_page(found, _record)

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

    # -- lookup (contract 0.1.2) ----------------------------------------

    def list_ids(self, host, model: str, cursor: Optional[str], page_size: int):
        """Every contact's id, a page at a time, without their properties."""
        body: dict[str, Any] = {
            "limit": paging.page_size(page_size, MAX_SEARCH_LIMIT),
            "properties": ["hs_object_id"],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
        }
        if cursor:
            body["after"] = cursor
        found = self._json(host, "POST", f"/crm/v3/objects/{_objects(model)}/search", body=body)
        items, next_cursor = paging.cursor_page(found, _record)
        return [r.external_id for r in items], next_cursor

    def find(self, host, model: str, field: str, value: str) -> list[str]:
        """The contacts whose email is `value` (the CRM keeps emails
        unique and compares them without case)."""
        if field != "email":
            raise Permanent(f"{model} records cannot be found by {field} in the CRM; only by email")
        body = {
            "limit": 10,
            "properties": ["email"],
            "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": value.lower()}]}],
        }
        found = self._json(host, "POST", f"/crm/v3/objects/{_objects(model)}/search", body=body)
        return [str(o["id"]) for o in found.get("results", []) if isinstance(o, dict) and "id" in o]


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
