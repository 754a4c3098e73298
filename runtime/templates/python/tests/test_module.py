"""{{name}} natively, on the SDK's fake host and scripted transport: what
it sends, and what it makes of the answers. `pytest` runs these."""

import pytest

from junction_guest.errors import Permanent
from junction_guest.testing import FakeHost, ScriptedTransport
from junction_guest.units import RemoteRecord

from {{module}} import MANIFEST, CompanyAdapter, CompanyMapper

TOKEN = (200, {"access_token": "tok", "expires_in": 1800})
COMPANY = {
    "id": "5",
    "properties": {"name": "Acme", "domain": "acme.example", "city": "Lyon", "country": "FR"},
    "updatedAt": "2026-02-01T00:00:00.000Z",
}


def test_the_manifest_claims_companies_of_crm_3():
    assert list(MANIFEST.models) == ["company"]
    assert MANIFEST.backend_kind == "crm"


def test_search_sends_the_token_the_page_size_and_updated_since():
    script = ScriptedTransport(TOKEN, (200, {"results": [COMPANY], "paging": {"next": {"after": "1"}}}))
    host = FakeHost(base_url="http://crm.test")
    records, after = CompanyAdapter(script).search(host, "company", {"updated-since": "2026-01-01T00:00:00Z"}, None, 500)
    assert [r.external_id for r in records] == ["5"]
    assert records[0].updated_at == COMPANY["updatedAt"]
    assert after == "1"
    assert script.sent[1].url == "http://crm.test/crm/v3/objects/companies/search"
    assert script.header(1, "authorization") == "Bearer tok"
    body = script.body(1)
    assert body["limit"] == 200
    assert body["filterGroups"][0]["filters"][0]["value"] == "2026-01-01T00:00:00Z"


def test_read_asks_for_the_properties():
    script = ScriptedTransport(TOKEN, (200, COMPANY))
    record = CompanyAdapter(script).read(FakeHost(base_url="http://crm.test"), "company", "5")
    assert record.data == COMPANY
    assert script.sent[1].url.startswith("http://crm.test/crm/v3/objects/companies/5?properties=name")


def test_an_unknown_model_is_refused_by_name():
    with pytest.raises(Permanent, match="knows company"):
        CompanyAdapter(ScriptedTransport(TOKEN)).search(FakeHost(), "deal", {}, None, 10)


def test_a_company_maps_to_local_fields():
    mapped = CompanyMapper().map_import(FakeHost(), "company", RemoteRecord("5", COMPANY))
    assert mapped == {"name": "Acme", "domain": "acme.example", "city": "Lyon", "country": "FR"}
