"""Local customer changes → jobs that export them to the CRM.

Only changes to fields the CRM keeps are exported; changes imported from
this same backend are not sent back (the event names its origin).
"""

from __future__ import annotations

from junction_guest.units import Event, JobRequest, Listener

from .mapping import FIELDS

EXPORTED = {local for _, local in FIELDS}


class CustomerListener(Listener):
    def on_event(self, host, backend: str, event: Event) -> list[JobRequest]:
        if event.model != "customer" or event.local_id is None or event.origin_backend == backend:
            return []
        if event.name == "record-deleted":
            return [JobRequest.delete_remote(backend, event.model, event.local_id)]
        if event.name == "record-created":
            return [JobRequest.export_record(backend, event.model, event.local_id)]
        if event.name == "record-written":
            changed = [f for f in event.changed_fields if f in EXPORTED]
            if changed:
                return [JobRequest.export_record(backend, event.model, event.local_id, changed)]
        return []
