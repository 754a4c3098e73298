"""The CRM connector's component entry: componentize-py builds this module
(with `junction_crm` and the SDK beside it) into one component exporting
`describe`, `adapter`, `mapper` and `listener`."""

from junction_crm import MANIFEST, ContactMapper, CrmAdapter, CustomerListener
from junction_guest.component import export

globals().update(
    export(
        manifest=MANIFEST,
        adapter=CrmAdapter(),
        mapper=ContactMapper(),
        listener=CustomerListener(),
    )
)
