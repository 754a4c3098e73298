"""The adapter against a scripted transport: what it sends, and what it
does with the CRM's answers (tokens, paging, conflicts, errors). The
end-to-end tests run it in the sandbox against the real `demo-crm`."""

import json

import pytest

from junction_crm.adapter import TOKEN_STATE, CrmAdapter
from junction_guest.errors import ConfigError, RateLimited
from junction_guest.http import Response
from junction_guest.testing import FakeHost, ScriptedTransport


Script = ScriptedTransport


TOKEN = (200, {"access_token": "tok-1", "token_type": "bearer", "expires_in": 1800})
CONTACT = {"id": "1001", "properties": {"email": "a@b.c"}, "updatedAt": "2026-01-01T00:00:00.000Z"}


def adapter(script, now=1000.0):
    return CrmAdapter(transport=script, clock=lambda: now)


def host():
    return FakeHost(base_url="http://crm.test")


def test_the_first_call_gets_a_token_without_credentials_of_its_own_and_keeps_it():
    script = Script(TOKEN, (200, CONTACT), (200, CONTACT))
    h = host()
    adapter(script).read(h, "customer", "1001")
    assert script.sent[0].url == "http://crm.test/oauth/v1/token"
    assert script.sent[0].body == b"grant_type=client_credentials"
    # The host adds the operator's client credentials to requests without any.
    assert script.header(0, "authorization") is None
    assert script.header(1, "authorization") == "Bearer tok-1"
    assert json.loads(h.state[TOKEN_STATE])["expires"] == 1000 + 1800 - 60
    adapter(script).read(h, "customer", "1001")
    assert len(script.sent) == 3, "the kept token is reused"


def test_an_expired_token_is_renewed_once():
    script = Script((200, {"access_token": "tok-2", "expires_in": 1800}), (200, CONTACT))
    h = host()
    h.state[TOKEN_STATE] = json.dumps({"token": "old", "expires": 999})
    adapter(script).read(h, "customer", "1001")
    assert script.header(1, "authorization") == "Bearer tok-2"


def test_a_refused_token_gets_a_new_one_and_one_retry():
    refused = (401, {"status": "error", "category": "EXPIRED_AUTHENTICATION", "message": "expired"})
    script = Script(TOKEN, refused, (200, {"access_token": "tok-2", "expires_in": 1800}), (200, CONTACT))
    record = adapter(script).read(host(), "customer", "1001")
    assert record.external_id == "1001"
    assert script.header(3, "authorization") == "Bearer tok-2"


def test_a_token_refused_twice_is_a_config_error():
    refused = (401, {"status": "error", "category": "INVALID_AUTHENTICATION", "message": "bad client"})
    script = Script(TOKEN, refused, TOKEN, refused)
    with pytest.raises(ConfigError):
        adapter(script).read(host(), "customer", "1001")


def test_search_pages_by_cursor_oldest_change_first():
    page = {"total": 3, "results": [CONTACT], "paging": {"next": {"after": "1"}}}
    script = Script(TOKEN, (200, page), (200, {"total": 3, "results": [CONTACT, CONTACT]}))
    a, h = adapter(script), host()
    records, cursor = a.search(h, "customer", {"updated-since": "2026-01-01T00:00:00Z"}, None, 500)
    assert [r.external_id for r in records] == ["1001"] and cursor == "1"
    body = script.body(1)
    assert body["limit"] == 200
    assert body["filterGroups"][0]["filters"][0] == {
        "propertyName": "lastmodifieddate",
        "operator": "GTE",
        "value": "2026-01-01T00:00:00Z",
    }
    assert body["sorts"][0]["direction"] == "ASCENDING"
    records, cursor = a.search(h, "customer", {}, "1", 10)
    assert len(records) == 2 and cursor is None
    assert script.body(2)["after"] == "1" and "filterGroups" not in script.body(2)


def test_creating_an_existing_email_adopts_that_contact():
    conflict = (409, {"status": "error", "category": "CONFLICT", "message": "Contact already exists. Existing ID: 1042"})
    script = Script(TOKEN, conflict, (200, CONTACT))
    data = {"properties": {"email": "a@b.c", "firstname": "A"}}
    assert adapter(script).create(host(), "customer", data) == "1042"
    assert script.sent[2].method == "PATCH"
    assert script.sent[2].url.endswith("/crm/v3/objects/contacts/1042")
    assert script.body(2) == data


def test_the_crm_rate_limit_is_reported_with_its_delay():
    script = Script(TOKEN, (429, {"status": "error", "category": "RATE_LIMITS", "message": "slow down"}, [("Retry-After", "7")]))
    with pytest.raises(RateLimited) as e:
        adapter(script).delete(host(), "customer", "1001")
    assert e.value.seconds == 7
