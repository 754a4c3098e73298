"""The webhook and lookup parts natively: which jobs a change list becomes,
and what `find` and `list_ids` ask the CRM."""

import json

import pytest

from junction_crm import FEATURES
from junction_crm.adapter import CrmAdapter
from junction_crm.webhooks import ContactWebhooks
from junction_guest.errors import Permanent
from junction_guest.testing import FakeHost, ScriptedTransport
from junction_guest.units import Webhook

TOKEN = (200, {"access_token": "tok-1", "token_type": "bearer", "expires_in": 1800})


def hook(body):
    return Webhook("contacts", [("content-type", "application/json")], json.dumps(body))


def test_changes_become_imports_and_checked_deletions_of_customers():
    jobs = ContactWebhooks().on_webhook(
        FakeHost(),
        "crm",
        hook(
            [
                {"objectId": 7, "subscriptionType": "contact.propertyChange"},
                {"objectId": 8, "subscriptionType": "contact.deletion"},
                {"objectId": 9, "subscriptionType": "company.creation"},
            ]
        ),
    )
    assert [(j.function, j.args) for j in jobs] == [
        ("junction.import-record", {"backend": "crm", "model": "customer", "external_id": "7"}),
        ("junction.delete-local", {"backend": "crm", "model": "customer", "external_id": "8", "verify": True}),
    ]


def test_a_body_that_is_not_a_change_list_is_refused_by_name():
    with pytest.raises(Permanent, match="list of changes"):
        ContactWebhooks().on_webhook(FakeHost(), "crm", hook({"objectId": 1}))
    with pytest.raises(Permanent, match="at most 100"):
        ContactWebhooks().on_webhook(FakeHost(), "crm", hook([{}] * 101))


def test_find_searches_contacts_by_email_and_list_ids_pages_ids_alone():
    script = ScriptedTransport(
        TOKEN,
        (200, {"total": 1, "results": [{"id": "42", "properties": {"email": "ada@example.com"}}]}),
        (200, {"total": 3, "results": [{"id": "1"}, {"id": "2"}], "paging": {"next": {"after": "2"}}}),
    )
    a, h = CrmAdapter(transport=script, clock=lambda: 1000.0), FakeHost(base_url="http://crm.test")
    assert a.find(h, "customer", "email", "Ada@Example.com") == ["42"]
    sent = json.loads(script.sent[1].body)
    assert sent["filterGroups"][0]["filters"][0] == {"propertyName": "email", "operator": "EQ", "value": "ada@example.com"}
    assert a.list_ids(h, "customer", None, 2) == (["1", "2"], "2")
    with pytest.raises(Permanent, match="only by email"):
        a.find(h, "customer", "phone", "1")


def test_the_features_declare_email_as_the_customers_natural_key():
    assert FEATURES.match_keys == [("customer", "email")]
    assert FEATURES.webhooks == ["contacts"]
