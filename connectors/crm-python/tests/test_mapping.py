import pytest

from junction_crm import MANIFEST, ContactMapper
from junction_guest.errors import Permanent
from junction_guest.testing import FakeHost
from junction_guest.units import LocalRecord, RemoteRecord

CONTACT = {
    "id": "1001",
    "properties": {"email": "Ana@Example.com", "firstname": "Ana", "lastname": "Silva", "phone": "+351 21 000 0000"},
    "updatedAt": "2026-01-02T03:04:05.000Z",
}


def local(data, id="cus-1"):
    return LocalRecord("customer", id, data, 1, "2026-01-02T03:04:05Z")


def test_a_contact_becomes_a_customer():
    out = ContactMapper().map_import(FakeHost(), "customer", RemoteRecord("1001", CONTACT))
    assert out == {"email": "ana@example.com", "first_name": "Ana", "last_name": "Silva", "phone": "+351 21 000 0000"}


def test_a_new_customer_becomes_a_contact_with_the_lifecycle_stage():
    data = {"email": "bo@example.com", "first_name": "Bo", "last_name": "Lee"}
    out = ContactMapper().map_export(FakeHost(), "customer", local(data), None)
    assert out == {
        "properties": {"email": "bo@example.com", "firstname": "Bo", "lastname": "Lee", "lifecyclestage": "customer"}
    }
    out = ContactMapper().map_export(FakeHost(settings={"lifecycle_stage": "lead"}), "customer", local(data), None)
    assert out["properties"]["lifecyclestage"] == "lead"


def test_an_update_sends_only_the_changed_fields():
    data = {"email": "bo@example.com", "first_name": "Bob", "last_name": "Lee"}
    out = ContactMapper().map_export(FakeHost(), "customer", local(data), ["first_name"])
    assert out == {"properties": {"firstname": "Bob"}}


def test_a_customer_without_email_cannot_become_a_contact():
    with pytest.raises(Permanent, match="cus-9 has no email"):
        ContactMapper().map_export(FakeHost(), "customer", local({"first_name": "X"}, "cus-9"), None)
    with pytest.raises(Permanent, match="not an email address"):
        ContactMapper().map_export(FakeHost(), "customer", local({"email": "nope"}), None)


def test_other_models_are_refused_by_name():
    with pytest.raises(Permanent, match="'order' is not synced"):
        ContactMapper().map_import(FakeHost(), "order", RemoteRecord("1", {}))


def test_the_manifest_names_the_crm_and_its_events():
    assert MANIFEST.backend_kind == "crm"
    assert "export" in MANIFEST.models["customer"]
    assert "record-written:customer" in MANIFEST.events
