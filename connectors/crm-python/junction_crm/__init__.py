"""Junction's CRM connector, in Python: syncs local customers with the
contacts of a HubSpot-CRM-v3-shaped API (the workspace's `demo-crm`).

- `adapter`: OAuth2 client-credentials tokens (the host adds the client's
  credentials, the token lives in the backend's state), cursor-paged
  searches, create/read/update/delete of contacts.
- `mapping`: contact properties ↔ local customer fields.
- `listener`: local customer changes → export or delete jobs.
- `webhooks`: the CRM's change notifications → import or delete jobs.

`FEATURES` declares what it offers beyond that (contract 0.1.2): a
customer is the same person everywhere by `email` (adoption), the CRM is
searched by email before a contact is created, contact ids are listed
alone for deletion reconciliation, and the webhook `contacts` is taken.
"""

from junction_guest.units import Features, Manifest

from .adapter import CrmAdapter
from .listener import CustomerListener
from .mapping import ContactMapper
from .webhooks import ContactWebhooks

MANIFEST = Manifest(
    name="crm-python",
    version="0.1.0",
    backend_kind="crm",
    backend_versions=">=3.0.0, <4.0.0",
    models={"customer": ["search", "read", "create", "write", "delete", "import", "export"]},
    events=["record-created:customer", "record-written:customer", "record-deleted:customer"],
    settings_schema={
        "type": "object",
        "properties": {
            "lifecycle_stage": {
                "type": "string",
                "description": "lifecyclestage given to contacts created from local customers",
            }
        },
        "additionalProperties": False,
    },
    secrets=["client_secret"],
)

FEATURES = Features(
    match_keys=[("customer", "email")],
    find=["customer"],
    list_ids=["customer"],
    webhooks=["contacts"],
)

__all__ = ["FEATURES", "MANIFEST", "ContactMapper", "ContactWebhooks", "CrmAdapter", "CustomerListener"]
