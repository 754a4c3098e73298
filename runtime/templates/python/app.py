"""The component entry: `./build.sh` builds this module, with the
`{{module}}` package and the SDK, into `{{name}}.wasm`."""

from junction_guest.component import export
from junction_guest.units import Listener

from {{module}} import MANIFEST, CompanyAdapter, CompanyMapper

# Built for the `connector-http` world (adapter, mapper, listener). The
# manifest names no events, so the host never calls the empty listener.
globals().update(export(manifest=MANIFEST, adapter=CompanyAdapter(), mapper=CompanyMapper(), listener=Listener()))
