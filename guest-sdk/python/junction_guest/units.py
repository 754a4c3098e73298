"""What a Python unit implements, and the manifest it describes itself with.

Units take and return plain Python values (dicts for JSON, tuples for
ids); the component glue (`junction_guest.component`) converts them to and
from the WIT types. Every method gets the `host` first: the binder,
records, state, jobs, log and backend config — `FakeHost` in native tests,
the real imports inside the sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

OPERATIONS = ("search", "read", "create", "write", "delete", "import", "export")


@dataclass
class Manifest:
    name: str
    version: str
    backend_kind: str
    backend_versions: str
    # Model name → operations (a subset of OPERATIONS).
    models: dict[str, list[str]]
    events: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    settings_schema: dict[str, Any] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    def __post_init__(self):
        for model, ops in self.models.items():
            unknown = [o for o in ops if o not in OPERATIONS]
            if unknown:
                raise ValueError(f"model {model}: unknown operations {unknown}; use {', '.join(OPERATIONS)}")


@dataclass
class RemoteRecord:
    external_id: str
    data: dict[str, Any]
    updated_at: Optional[str] = None


@dataclass
class LocalRecord:
    model: str
    id: str
    data: dict[str, Any]
    version: int
    updated_at: str


class Adapter:
    """Talks to the remote backend (OCA's BackendAdapter)."""

    def check(self, host, settings: dict) -> str:
        raise NotImplementedError

    def search(self, host, model: str, filter: dict, cursor: Optional[str], page_size: int) -> tuple[list[RemoteRecord], Optional[str]]:
        raise NotImplementedError

    def read(self, host, model: str, external_id: str) -> RemoteRecord:
        raise NotImplementedError

    def create(self, host, model: str, data: dict) -> str:
        raise NotImplementedError

    def write(self, host, model: str, external_id: str, data: dict) -> None:
        raise NotImplementedError

    def delete(self, host, model: str, external_id: str) -> None:
        raise NotImplementedError


class Mapper:
    """Transforms records (OCA's Mapper)."""

    def map_import(self, host, model: str, record: RemoteRecord) -> dict:
        raise NotImplementedError

    def map_export(self, host, model: str, record: LocalRecord, changed: Optional[list[str]]) -> dict:
        raise NotImplementedError

    def dependencies(self, host, model: str, record: RemoteRecord) -> list[tuple[str, str]]:
        return []

    def export_dependencies(self, host, model: str, record: LocalRecord) -> list[tuple[str, str]]:
        return []
