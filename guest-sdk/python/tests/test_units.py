"""Manifests refuse unknown operations; the in-memory host keeps what a
unit did."""

import pytest

from junction_guest.testing import FakeHost
from junction_guest.units import Manifest


def test_manifest_names_unknown_operations():
    with pytest.raises(ValueError, match="model contact: unknown operations \\['upsert'\\]"):
        Manifest("crm", "0.1.0", "crm", ">=3", {"contact": ["import", "upsert"]})
    Manifest("crm", "0.1.0", "crm", ">=3", {"contact": ["search", "read", "import"]})


def test_fake_host_records_jobs_state_and_logs():
    host = FakeHost()
    assert host.enqueue("junction.import-record", {"model": "contact", "id": "7"}, identity_key="c7") == "1"
    assert host.jobs == [{"function": "junction.import-record", "args": {"model": "contact", "id": "7"}, "identity_key": "c7"}]
    host.set_state("cursor", "42")
    assert host.get_state("cursor") == "42"
    host.log("info", "hello")
    assert host.logs == [("info", "hello")]
    host.bind("contact", "7", "L1")
    assert host.to_external("contact", "L1") == "7"
    assert host.to_local("contact", "8") is None
