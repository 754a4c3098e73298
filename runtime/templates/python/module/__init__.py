"""{{name}}: companies of a HubSpot-CRM-v3-shaped API (Junction's
reference CRM, `demo-crm`) imported into local `company` records.

Start here: add a model to MANIFEST, its API path to OBJECTS and its
fields to PROPERTIES, then map them in CompanyMapper. The host calls
`search` page by page with `{"updated-since": ...}` after the first import,
and skips records whose `updated_at` is older than their last sync: return
it, or every import re-imports everything.
"""

from __future__ import annotations

from junction_guest.errors import Permanent
from junction_guest.mapping import Mapping
from junction_guest.oauth import OAuthClient
from junction_guest.paging import cursor_page, page_size
from junction_guest.units import Adapter, Manifest, Mapper, RemoteRecord

MANIFEST = Manifest(
    name="{{name}}",
    version="0.1.0",
    # The backends this connector serves: their kind and a semver range.
    backend_kind="crm",
    backend_versions=">=3.0.0, <4.0.0",
    # Model → operations; the order of models is the import order.
    models={"company": ["search", "read", "import"]},
    settings_schema={"type": "object"},
    # The OAuth2 client's secret: the host adds the backend's credentials
    # to the token request only, and never shows them to the connector.
    secrets=["client_secret"],
)

# Local model → the API's object type, and the properties asked for.
OBJECTS = {"company": "companies"}
PROPERTIES = {"company": ["name", "domain", "city", "country", "lastmodifieddate"]}
# The largest page the API gives.
MAX_PAGE = 200


def _objects(model: str) -> str:
    if model not in OBJECTS:
        raise Permanent(f"model {model!r} is not synced by {{name}}; it knows {', '.join(OBJECTS)}")
    return OBJECTS[model]


def _record(obj) -> RemoteRecord:
    if not isinstance(obj, dict) or "id" not in obj:
        raise Permanent(f"the CRM answered with something that is not an object: {str(obj)[:200]}")
    return RemoteRecord(str(obj["id"]), obj, obj.get("updatedAt"))


class CompanyAdapter(Adapter):
    """The API calls. `transport` is for tests (a ScriptedTransport)."""

    def __init__(self, transport=None):
        self.transport = transport

    def _api(self, host) -> OAuthClient:
        return OAuthClient(host, "/oauth/v1/token", transport=self.transport)

    def check(self, host, settings: dict) -> str:
        found = self._api(host).json("POST", "/crm/v3/objects/companies/search", body={"limit": 1})
        return f"connected to the CRM at {host.base_url}: {found.get('total', 0)} companies"

    def search(self, host, model: str, filter: dict, cursor, wanted: int):
        body = {
            "limit": page_size(wanted, MAX_PAGE),
            "properties": PROPERTIES[model] if model in PROPERTIES else [],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        }
        if filter.get("updated-since"):
            since = {"propertyName": "lastmodifieddate", "operator": "GTE", "value": filter["updated-since"]}
            body["filterGroups"] = [{"filters": [since]}]
        if cursor:
            body["after"] = cursor
        found = self._api(host).json("POST", f"/crm/v3/objects/{_objects(model)}/search", body=body)
        return cursor_page(found, _record)

    def read(self, host, model: str, external_id: str) -> RemoteRecord:
        query = {"properties": ",".join(PROPERTIES.get(model, []))}
        return _record(self._api(host).json("GET", f"/crm/v3/objects/{_objects(model)}/{external_id}", query=query))


class CompanyMapper(Mapper):
    """Remote record → local fields."""

    def map_import(self, host, model: str, record: RemoteRecord) -> dict:
        _objects(model)
        m = Mapping(record.data).binder(host)
        for prop in ("name", "domain", "city", "country"):
            m.direct(f"properties.{prop}", prop)
        return m.finish()


__all__ = ["MANIFEST", "CompanyAdapter", "CompanyMapper"]
