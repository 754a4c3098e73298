"""The contract's `types` interface from componentize-py's bindings.

Its module is `types` in worlds where no other package has a `types`
interface, and `junction_connector_types` where one does (a world that
also imports `wasi:http`).
"""

try:
    from wit_world.imports.junction_connector_types import *  # noqa: F403
except ImportError:
    from wit_world.imports.types import *  # noqa: F403
