"""Mapping helpers, natively, with the in-memory host as the binder."""

import pytest

from junction_guest import EXPORT, IMPORT, Mapping, Permanent, Retryable
from junction_guest.testing import FakeHost

CONTACT = {
    "id": "1001",
    "properties": {"email": "ada@example.com", "firstname": "Ada", "lastname": "Lovelace", "associatedcompanyid": "77"},
    "lines": [{"sku": "A", "qty": "2"}, {"sku": "B", "qty": "1"}],
}


def test_direct_convert_and_nested_paths():
    out = (
        Mapping(CONTACT)
        .direct("properties.email", "email")
        .convert("properties.firstname", "name", lambda v: v.upper())
        .direct("properties.missing", "gone")
        .constant("source", "crm")
        .finish()
    )
    assert out == {"email": "ada@example.com", "name": "ADA", "source": "crm"}


def test_relations_go_through_the_binder_both_ways():
    host = FakeHost()
    host.bind("company", "77", "local-5")
    out = Mapping(CONTACT).binder(host, IMPORT).relation("properties.associatedcompanyid", "company_id", "company").finish()
    assert out == {"company_id": "local-5"}
    back = Mapping({"company_id": "local-5"}).binder(host, EXPORT).relation("company_id", "associatedcompanyid", "company").finish()
    assert back == {"associatedcompanyid": "77"}


def test_an_unbound_relation_is_retryable_and_no_binder_is_permanent():
    with pytest.raises(Retryable, match="company 77 is not bound yet"):
        Mapping(CONTACT).binder(FakeHost(), IMPORT).relation("properties.associatedcompanyid", "c", "company").finish()
    with pytest.raises(Permanent, match="no binder"):
        Mapping(CONTACT).relation("properties.associatedcompanyid", "c", "company").finish()


def test_updates_map_only_changed_fields_and_skip_create_only_ones():
    record = {"email": "a@b.c", "name": "Ada", "phone": "1"}
    out = Mapping(record).update(["name"]).direct("email", "email").direct("name", "firstname").on_create("phone", "phone").finish()
    assert out == {"firstname": "Ada"}
    created = Mapping(record).on_create("phone", "phone").finish()
    assert created == {"phone": "1"}


def test_children_map_each_line():
    out = Mapping(CONTACT).children("lines", "items", lambda m: m.direct("sku", "sku").convert("qty", "qty", int)).finish()
    assert out == {"items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}
    with pytest.raises(Permanent, match=r"lines\[1\]: invalid literal|field qty"):
        Mapping({"lines": [{"qty": "1"}, {"qty": "x"}]}).children("lines", "items", lambda m: m.convert("qty", "qty", int)).finish()


def test_non_objects_are_refused():
    with pytest.raises(Permanent, match="JSON object"):
        Mapping([1, 2])
    with pytest.raises(Permanent, match="not a list"):
        Mapping({"lines": 3}).children("lines", "x", lambda m: m).finish()
