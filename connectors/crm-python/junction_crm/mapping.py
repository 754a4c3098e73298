"""Contact properties ↔ local customer fields.

Local customers are what the shop connector imports (`email`,
`first_name`, `last_name`); contacts carry a few more properties, which
come along on import and go back on export when a local record has them.
"""

from __future__ import annotations

import json
from typing import Optional

from junction_guest.errors import Permanent
from junction_guest.mapping import Mapping
from junction_guest.units import LocalRecord, Mapper, RemoteRecord

# (contact property, local field)
FIELDS = [
    ("email", "email"),
    ("firstname", "first_name"),
    ("lastname", "last_name"),
    ("phone", "phone"),
    ("city", "city"),
    ("country", "country"),
]

DEFAULT_LIFECYCLE_STAGE = "customer"


def _email(value):
    if not isinstance(value, str) or "@" not in value:
        raise Permanent(f"email {json.dumps(value)} is not an email address")
    return value.strip().lower()


def _unknown(model: str) -> Permanent:
    return Permanent(f"model {model!r} is not synced by this connector; it knows customer")


class ContactMapper(Mapper):
    def map_import(self, host, model: str, record: RemoteRecord) -> dict:
        if model != "customer":
            raise _unknown(model)
        m = Mapping(record.data)
        for prop, local in FIELDS:
            if prop == "email":
                m.convert("properties.email", "email", _email)
            else:
                m.direct(f"properties.{prop}", local)
        return m.finish()

    def map_export(self, host, model: str, record: LocalRecord, changed: Optional[list[str]]) -> dict:
        if model != "customer":
            raise _unknown(model)
        m = Mapping(record.data)
        if changed is not None:
            m.update(changed)
        for prop, local in FIELDS:
            if local == "email":
                m.convert("email", "email", _email)
            else:
                m.direct(local, prop)
        stage = host.settings.get("lifecycle_stage", DEFAULT_LIFECYCLE_STAGE)
        if m.creating:
            m.constant("lifecyclestage", stage)
        properties = m.finish()
        if m.creating and "email" not in properties:
            raise Permanent(f"customer {record.id} has no email; a contact needs one")
        return {"properties": properties}
