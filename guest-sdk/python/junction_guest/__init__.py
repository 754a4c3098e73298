"""Junction's Python guest SDK: connector units (adapter, mapper, listener)
written in Python and built into WebAssembly components with
componentize-py, against the WIT contract `junction:connector@0.1.2`.

- `errors`: the contract's guest errors as exceptions.
- `http`: a JSON HTTP client that turns statuses and failures into them.
- `mapping`: OCA-style mapping helpers.
- `oauth`: OAuth2 client credentials (token in the backend's state).
- `paging`: cursor-paged search helpers.
- `testing`: the host's imports in memory and a scripted HTTP transport,
  for native pytest runs.
- `units`: the adapter / mapper / listener base classes and the manifest.
- `component`: the glue componentize-py builds a unit's module with.
"""

from .errors import (
    ConfigError,
    ConnectorError,
    NotFound,
    NothingToDo,
    Permanent,
    RateLimited,
    Retryable,
)
from .http import Client, Request, Response, TransportError
from .mapping import EXPORT, IMPORT, Mapping
from .units import Adapter, Event, JobRequest, Listener, LocalRecord, Manifest, Mapper, RemoteRecord

__all__ = [
    "Adapter",
    "Client",
    "Event",
    "JobRequest",
    "Listener",
    "LocalRecord",
    "Manifest",
    "Mapper",
    "RemoteRecord",
    "ConfigError",
    "ConnectorError",
    "EXPORT",
    "IMPORT",
    "Mapping",
    "NotFound",
    "NothingToDo",
    "Permanent",
    "RateLimited",
    "Request",
    "Response",
    "Retryable",
    "TransportError",
]
