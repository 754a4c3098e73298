"""The CRM's webhooks (HubSpot-shaped): each call lists changes,
`{"objectId", "subscriptionType": "contact.creation" | "contact.propertyChange"
| "contact.deletion", "occurredAt"}`; a change becomes an import of the
contact, or the deletion of its local copy once the CRM confirms it is gone."""

from __future__ import annotations

import json

from junction_guest.errors import Permanent
from junction_guest.units import JobRequest, Webhook, Webhooks

# At most this many changes in one call: a call is one job each.
MAX_CHANGES = 100


class ContactWebhooks(Webhooks):
    def on_webhook(self, host, backend: str, hook: Webhook) -> list[JobRequest]:
        try:
            changes = json.loads(hook.body)
        except ValueError as e:
            raise Permanent(f"the webhook body is not JSON: {e}") from None
        if not isinstance(changes, list):
            raise Permanent("the webhook body must be a list of changes")
        if len(changes) > MAX_CHANGES:
            raise Permanent(f"the call lists {len(changes)} changes; at most {MAX_CHANGES}")
        jobs = []
        for change in changes:
            kind = str(change.get("subscriptionType", "")) if isinstance(change, dict) else ""
            if not kind.startswith("contact.") or "objectId" not in change:
                continue
            contact = str(change["objectId"])
            if kind == "contact.deletion":
                jobs.append(JobRequest.delete_local(backend, "customer", contact, verify=True))
            else:
                jobs.append(JobRequest.import_record(backend, "customer", contact))
        return jobs
