"""The companies-and-deals connector natively: searches with the token and
the `updated-since` filter, deals mapped with their company's local id."""

import pytest

from junction_crm_deals import MANIFEST, DealsAdapter, DealsMapper
from junction_guest.errors import Permanent, Retryable
from junction_guest.testing import FakeHost, ScriptedTransport
from junction_guest.units import RemoteRecord

TOKEN = (200, {"access_token": "tok", "expires_in": 1800})
DEAL = {
    "id": "77",
    "properties": {"dealname": "Big one", "amount": "1200.5", "dealstage": "closedwon", "associatedcompanyid": "5"},
    "updatedAt": "2026-02-01T00:00:00.000Z",
}


def test_it_claims_only_companies_and_deals():
    assert list(MANIFEST.models) == ["company", "deal"]


def test_search_pages_with_the_token_and_the_filter():
    script = ScriptedTransport(TOKEN, (200, {"results": [DEAL], "paging": {"next": {"after": "1"}}}))
    records, after = DealsAdapter(script).search(FakeHost(), "deal", {"updated-since": "2026-01-01T00:00:00Z"}, None, 500)
    assert [r.external_id for r in records] == ["77"] and records[0].updated_at == DEAL["updatedAt"]
    assert after == "1"
    assert script.sent[1].url.endswith("/crm/v3/objects/deals/search")
    assert script.header(1, "authorization") == "Bearer tok"
    body = script.body(1)
    assert body["limit"] == 200
    assert body["filterGroups"][0]["filters"][0]["value"] == "2026-01-01T00:00:00Z"
    with pytest.raises(Permanent, match="knows company and deal"):
        DealsAdapter(ScriptedTransport(TOKEN)).search(FakeHost(), "contact", {}, None, 10)


def test_a_deal_maps_with_its_companys_local_id_and_needs_it_first():
    host = FakeHost()
    record = RemoteRecord("77", DEAL)
    assert DealsMapper().dependencies(host, "deal", record) == [("company", "5")]
    with pytest.raises(Retryable):
        DealsMapper().map_import(host, "deal", record)
    host.bind("company", "5", "company-local-5")
    mapped = DealsMapper().map_import(host, "deal", record)
    assert mapped == {"name": "Big one", "stage": "closedwon", "amount": 1200.5, "company": "company-local-5"}
