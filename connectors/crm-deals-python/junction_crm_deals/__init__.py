"""Companies and deals of a HubSpot-CRM-v3-shaped CRM, imported into local
`company` and `deal` records (a deal linked to its company through the
binder). It claims only those two models, so it installs beside another
vendor's contacts connector on the same CRM backend."""

from __future__ import annotations

from junction_guest.errors import Permanent
from junction_guest.mapping import Mapping
from junction_guest.oauth import OAuthClient
from junction_guest.paging import cursor_page, page_size
from junction_guest.units import Adapter, Manifest, Mapper, RemoteRecord

MANIFEST = Manifest(
    name="crm-deals-python",
    version="0.1.0",
    backend_kind="crm",
    backend_versions=">=3.0.0, <4.0.0",
    # Import order: a deal's company first.
    models={"company": ["search", "read", "import"], "deal": ["search", "read", "import"]},
    settings_schema={"type": "object"},
    # The OAuth2 client's secret, which the host adds to the token request.
    secrets=["client_secret"],
)

OBJECTS = {"company": "companies", "deal": "deals"}
PROPERTIES = {
    "company": ["name", "domain", "industry", "city", "country", "lastmodifieddate"],
    "deal": ["dealname", "amount", "dealstage", "closedate", "associatedcompanyid", "lastmodifieddate"],
}


def _objects(model: str) -> str:
    if model not in OBJECTS:
        raise Permanent(f"model {model!r} is not synced by this connector; it knows company and deal")
    return OBJECTS[model]


def _record(obj) -> RemoteRecord:
    if not isinstance(obj, dict) or "id" not in obj:
        raise Permanent(f"the CRM answered with something that is not an object: {str(obj)[:200]}")
    return RemoteRecord(str(obj["id"]), obj, obj.get("updatedAt"))


class DealsAdapter(Adapter):
    def __init__(self, transport=None):
        self.transport = transport

    def _api(self, host) -> OAuthClient:
        return OAuthClient(host, "/oauth/v1/token", transport=self.transport)

    def check(self, host, settings: dict) -> str:
        found = self._api(host).json("POST", "/crm/v3/objects/companies/search", body={"limit": 1})
        return f"connected to the CRM at {host.base_url}: {found.get('total', 0)} companies"

    def search(self, host, model: str, filter: dict, cursor, wanted: int):
        body = {
            "limit": page_size(wanted, 200),
            "properties": PROPERTIES.get(model, []),
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


class DealsMapper(Mapper):
    def map_import(self, host, model: str, record: RemoteRecord) -> dict:
        m = Mapping(record.data).binder(host)
        if model == "company":
            for prop in ("name", "domain", "industry", "city", "country"):
                m.direct(f"properties.{prop}", prop)
        elif model == "deal":
            m.direct("properties.dealname", "name").direct("properties.dealstage", "stage")
            m.convert("properties.amount", "amount", float).direct("properties.closedate", "close_date")
            m.relation("properties.associatedcompanyid", "company", "company")
        else:
            _objects(model)
        return m.finish()

    def dependencies(self, host, model: str, record: RemoteRecord):
        company = (record.data.get("properties") or {}).get("associatedcompanyid")
        return [("company", str(company))] if model == "deal" and company else []


__all__ = ["MANIFEST", "DealsAdapter", "DealsMapper"]
