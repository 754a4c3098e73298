"""The companies-and-deals connector's component entry (componentize-py
builds this module, with `junction_crm_deals` and the SDK beside it)."""

from junction_crm_deals import MANIFEST, DealsAdapter, DealsMapper
from junction_guest.component import export
from junction_guest.units import Listener

# Built for the `connector-http` world; the manifest names no events, so
# the host never calls the (empty) listener.
globals().update(export(manifest=MANIFEST, adapter=DealsAdapter(), mapper=DealsMapper(), listener=Listener()))
