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
class Event:
    """A change to a local record (or a custom event) a listener may turn into jobs."""

    name: str
    model: str
    local_id: Optional[str] = None
    changed_fields: list[str] = field(default_factory=list)
    payload: Any = None
    # The backend an import came from: never export back to it.
    origin_backend: Optional[str] = None


@dataclass
class JobRequest:
    """A job a listener asks the host to enqueue (see the WIT `job-request`)."""

    function: str
    args: dict[str, Any]
    priority: Optional[int] = None
    eta: Optional[str] = None
    channel: Optional[str] = None
    identity_key: Optional[str] = None
    max_retries: Optional[int] = None
    description: Optional[str] = None

    @staticmethod
    def export_record(backend: str, model: str, local_id: str, changed: Optional[list[str]] = None) -> "JobRequest":
        """The synchronizer's export of one local record to `backend`:
        `changed` fields of an update, or all (`None`)."""
        args: dict[str, Any] = {"backend": backend, "model": model, "local_id": local_id}
        if changed is not None:
            args["fields"] = list(changed)
        return JobRequest(
            "junction.export-record",
            args,
            description=f"export {model} {local_id} to {backend}",
        )

    @staticmethod
    def import_record(backend: str, model: str, external_id: str) -> "JobRequest":
        """The synchronizer's import of one backend record."""
        return JobRequest(
            "junction.import-record",
            {"backend": backend, "model": model, "external_id": str(external_id)},
            description=f"import {model} {external_id} from {backend}",
        )

    @staticmethod
    def delete_local(backend: str, model: str, external_id: str, verify: bool = True) -> "JobRequest":
        """The synchronizer's deletion of the local record bound to a record
        the backend deleted; `verify` deletes only if the backend answers
        not-found for it when the job runs."""
        return JobRequest(
            "junction.delete-local",
            {"backend": backend, "model": model, "external_id": str(external_id), "verify": verify},
            description=f"delete local {model} of {external_id} in {backend}",
        )

    @staticmethod
    def task(backend: str, task: str, args: dict[str, Any]) -> "JobRequest":
        """One of the connector's own tasks (declared in its features)."""
        return JobRequest(
            "junction.task",
            {"backend": backend, "task": task, "args": args},
            description=f"task {task} for {backend}",
        )

    @staticmethod
    def delete_remote(backend: str, model: str, local_id: str) -> "JobRequest":
        """The synchronizer's deletion of a local record's copy in `backend`."""
        return JobRequest(
            "junction.delete-remote",
            {"backend": backend, "model": model, "local_id": local_id},
            description=f"delete {model} {local_id} in {backend}",
        )


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


class Listener:
    """Turns local events into jobs (OCA's listeners); no jobs is the `skip_if`."""

    def on_event(self, host, backend: str, event: Event) -> list[JobRequest]:
        return []


@dataclass
class Features:
    """What a unit offers beyond the 0.1.1 contract (contract 0.1.2, the
    `full-connector` worlds): the host calls only what this declares.

    - `match_keys`: `(model, field)` pairs, fields of local data that are
      natural keys (a customer's `email`); the host adopts the local record
      with an equal value (trimmed, lowercased) instead of creating one.
    - `find`: models `Lookup.find` searches the backend by match field for.
    - `list_ids`: models `Lookup.list_ids` pages the ids of.
    - `webhooks`: names `Webhooks.on_webhook` takes.
    - `tasks`: `(name, description)` of the tasks `Tasks.run` runs.
    """

    match_keys: list[tuple[str, str]] = field(default_factory=list)
    find: list[str] = field(default_factory=list)
    list_ids: list[str] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)
    tasks: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Webhook:
    """A webhook call the host verified (signature, size, replay window)."""

    name: str
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> Optional[str]:
        return next((v for n, v in self.headers if n == name), None)


class Lookup:
    """Ids-only listing and search by match field."""

    def list_ids(self, host, model: str, cursor: Optional[str], page_size: int) -> tuple[list[str], Optional[str]]:
        raise NotImplementedError

    def find(self, host, model: str, field: str, value: str) -> list[str]:
        raise NotImplementedError


class Webhooks:
    """Turns the backend's webhook calls into jobs."""

    def on_webhook(self, host, backend: str, hook: Webhook) -> list[JobRequest]:
        return []


class Tasks:
    """Runs the connector's own job functions; returns the job's result line."""

    def run(self, host, name: str, args: dict) -> str:
        raise NotImplementedError
