"""Junction's Python guest SDK: connector units (adapter, mapper, listener)
written in Python and built into WebAssembly components with
componentize-py, against the WIT contract `junction:connector@0.1.0`.

- `errors`: the contract's guest errors as exceptions.
- `http`: a JSON HTTP client that turns statuses and failures into them.
- `mapping`: OCA-style mapping helpers.
- `testing`: the host's imports in memory, for native pytest runs.
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

__all__ = [
    "Client",
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
