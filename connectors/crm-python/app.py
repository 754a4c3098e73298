"""The CRM connector's component entry: componentize-py builds this module
(with `junction_crm` and the SDK beside it) into one component exporting
`describe`, `adapter`, `mapper` and `listener`, and — built for the
`full-connector-http` world — `features`, `lookup` and `webhooks`."""

from junction_crm import FEATURES, MANIFEST, ContactMapper, ContactWebhooks, CrmAdapter, CustomerListener
from junction_guest.component import export

adapter = CrmAdapter()
globals().update(
    export(
        manifest=MANIFEST,
        adapter=adapter,
        mapper=ContactMapper(),
        listener=CustomerListener(),
        features=FEATURES,
        lookup=adapter,
        webhooks=ContactWebhooks(),
    )
)
