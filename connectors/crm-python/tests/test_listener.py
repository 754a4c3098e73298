from junction_crm import CustomerListener
from junction_guest.testing import FakeHost
from junction_guest.units import Event


def on(event):
    return CustomerListener().on_event(FakeHost(), "crm", event)


def test_a_new_customer_is_exported_whole():
    [job] = on(Event("record-created", "customer", "cus-1", ["email", "first_name"], origin_backend="shop"))
    assert job.function == "junction.export-record"
    assert job.args == {"backend": "crm", "model": "customer", "local_id": "cus-1"}


def test_a_change_exports_only_the_fields_the_crm_keeps():
    [job] = on(Event("record-written", "customer", "cus-1", ["first_name", "loyalty_points"]))
    assert job.args["fields"] == ["first_name"]
    assert on(Event("record-written", "customer", "cus-1", ["loyalty_points"])) == []


def test_a_deleted_customer_is_deleted_in_the_crm():
    [job] = on(Event("record-deleted", "customer", "cus-1"))
    assert job.function == "junction.delete-remote"


def test_changes_from_the_crm_itself_and_other_models_are_skipped():
    assert on(Event("record-written", "customer", "cus-1", ["email"], origin_backend="crm")) == []
    assert on(Event("record-created", "order", "ord-1", ["number"])) == []
