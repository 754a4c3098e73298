"""The glue between a Python unit and componentize-py's bindings.

A connector's app module ends with

    globals().update(export(manifest=MANIFEST, mapper=MyMapper()))

which defines the classes componentize-py looks for (`Describe`,
`Mapper`, `Adapter`): they convert WIT values to the SDK's plain ones,
call the unit with the sandbox's host, and turn `ConnectorError`s into the
contract's `error` variant. Any other exception traps the call: it is a
bug in the connector, and the host reports it as one.
"""

from __future__ import annotations

import json
import traceback
from typing import Any, Optional

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import binder, config, jobs, log, records, state
from . import _wit_types as t

from .errors import ConnectorError, Permanent, to_wit

# A component imports all its modules while it is built; at run time it
# has no filesystem to import from. So the wasi:http transport is imported
# here, where the world has outgoing HTTP, for `http.Client` to find.
try:
    from wit_world.imports import outgoing_handler as _outgoing  # noqa: F401
except ImportError:
    pass
else:
    from . import _wasi_http  # noqa: F401
from .units import Event, Features, JobRequest, LocalRecord, Manifest, RemoteRecord, Webhook


class SandboxHost:
    """The host's imports, with the same methods as `testing.FakeHost`
    (`tests/test_parity.py` fails when they diverge)."""

    @property
    def name(self) -> str:
        return config.backend().name

    @property
    def kind(self) -> str:
        return config.backend().kind

    @property
    def settings(self) -> dict[str, Any]:
        return json.loads(config.settings())

    @property
    def base_url(self) -> str:
        return config.backend().base_url

    @property
    def version(self) -> str:
        return config.backend().version

    def to_local(self, model: str, external_id: str) -> Optional[str]:
        return binder.to_local(model, external_id)

    def to_external(self, model: str, local_id: str) -> Optional[str]:
        return binder.to_external(model, local_id)

    def bind(self, model: str, external_id: str, local_id: str, sync_date: Optional[str] = None) -> None:
        binder.bind(model, external_id, local_id, sync_date)

    def record(self, model: str, local_id: str) -> Optional[dict[str, Any]]:
        r = records.get(model, local_id)
        return None if r is None else json.loads(r.data)

    def get_state(self, key: str) -> Optional[str]:
        return state.get(key)

    def set_state(self, key: str, value: str) -> None:
        state.set(key, value)

    def enqueue(self, function: str, args: dict[str, Any], **options: Any) -> str:
        return jobs.enqueue(_job_request(JobRequest(function, args, **options)))

    def log(self, level: str, message: str) -> None:
        log.log(log.Level[level.upper()], message)


HOST = SandboxHost()


def _guard(f, *args):
    try:
        return f(HOST, *args)
    except ConnectorError as e:
        raise Err(to_wit(e)) from None
    except Exception:
        # The call traps; the traceback goes to the guest's stderr, which
        # the host keeps in the job's log and names in the trap's message.
        traceback.print_exc()
        raise


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise Err(to_wit(Permanent(f"{what} is not JSON: {e}"))) from None


def _remote(r: t.RemoteRecord) -> RemoteRecord:
    return RemoteRecord(r.external_id, _json(r.data, "the record"), r.updated_at)


def _local(r: t.LocalRecord) -> LocalRecord:
    return LocalRecord(r.model, r.id, _json(r.data, "the record"), r.version, r.updated_at)


def _to_wit_record(r: RemoteRecord) -> t.RemoteRecord:
    return t.RemoteRecord(external_id=str(r.external_id), updated_at=r.updated_at, data=json.dumps(r.data))


def _manifest(m: Manifest) -> t.Manifest:
    def ops(names):
        flags = t.Operations(0)
        for n in names:
            flags |= t.Operations[n.upper()]
        return flags

    return t.Manifest(
        name=m.name,
        version=m.version,
        backend_kind=m.backend_kind,
        backend_versions=m.backend_versions,
        models=[t.ModelSupport(name=k, operations=ops(v)) for k, v in m.models.items()],
        events=list(m.events),
        hosts=list(m.hosts),
        settings_schema=json.dumps(m.settings_schema),
        secrets=list(m.secrets),
    )


def _job_request(j: JobRequest) -> t.JobRequest:
    return t.JobRequest(
        function=j.function,
        args=json.dumps(j.args),
        priority=j.priority,
        eta=j.eta,
        channel=j.channel,
        identity_key=j.identity_key,
        max_retries=j.max_retries,
        description=j.description,
    )


def _event(e: t.Event) -> Event:
    return Event(
        name=e.name,
        model=e.model,
        local_id=e.local_id,
        changed_fields=list(e.changed_fields),
        payload=_json(e.payload, "the event payload") if e.payload else None,
        origin_backend=e.origin_backend,
    )


def _declined(what: str):
    raise Err(to_wit(Permanent(f"this connector does not {what}")))


def export(
    manifest: Manifest,
    adapter=None,
    mapper=None,
    listener=None,
    features: Optional[Features] = None,
    lookup=None,
    webhooks=None,
    tasks=None,
) -> dict[str, type]:
    """The export classes for componentize-py, for the units given. For a
    `full-connector` world every optional export is defined: `features`
    declares what is offered, and an export not given declines."""
    described = _manifest(manifest)
    out: dict[str, type] = {}
    if hasattr(exports, "Features"):
        # The records of exported interfaces live in their own modules.
        from wit_world.exports import features as wf
        from wit_world.exports import lookup as wl

        f = features or Features()
        declared = wf.FeatureSet(
            list_ids=list(f.list_ids),
            find=list(f.find),
            match_keys=[wf.MatchField(model=m, field=k) for m, k in f.match_keys],
            webhooks=list(f.webhooks),
            tasks=[wf.TaskSpec(name=n, description=d) for n, d in f.tasks],
        )

        class FeaturesExport(exports.Features):
            def features(self):
                return declared

        class LookupExport(exports.Lookup):
            def list_ids(self, model, cursor, page_size):
                if lookup is None:
                    _declined(f"list the ids of {model} records")
                ids, next_cursor = _guard(lookup.list_ids, model, cursor, page_size)
                return wl.IdPage(ids=[str(i) for i in ids], next_cursor=next_cursor)

            def find(self, model, field, value):
                if lookup is None:
                    _declined(f"find {model} records by {field}")
                return [str(i) for i in _guard(lookup.find, model, field, value)]

        class WebhooksExport(exports.Webhooks):
            def on_webhook(self, backend, hook):
                if webhooks is None:
                    _declined(f"take webhook {hook.name}")
                call = Webhook(hook.name, [(n, v) for n, v in hook.headers], hook.body)
                return [_job_request(j) for j in _guard(webhooks.on_webhook, backend, call)]

        class TasksExport(exports.Tasks):
            def run(self, name, args):
                if tasks is None:
                    _declined(f"run task {name}")
                return str(_guard(tasks.run, name, _json(args, "the task's arguments")))

        out.update(Features=FeaturesExport, Lookup=LookupExport, Webhooks=WebhooksExport, Tasks=TasksExport)

    class Describe(exports.Describe):
        def describe(self) -> t.Manifest:
            return described

    out["Describe"] = Describe

    if mapper is not None:

        class Mapper(exports.Mapper):
            def map_import(self, model, record):
                return json.dumps(_guard(mapper.map_import, model, _remote(record)))

            def map_export(self, model, record, changed_fields):
                return json.dumps(_guard(mapper.map_export, model, _local(record), changed_fields))

            def dependencies(self, model, record):
                deps = _guard(mapper.dependencies, model, _remote(record))
                return [t.Dependency(model=m, external_id=str(i)) for m, i in deps]

            def export_dependencies(self, model, record):
                deps = _guard(mapper.export_dependencies, model, _local(record))
                return [t.LocalDependency(model=m, local_id=str(i)) for m, i in deps]

        out["Mapper"] = Mapper

    if adapter is not None:

        class Adapter(exports.Adapter):
            def check(self, settings):
                return _guard(adapter.check, _json(settings, "the settings"))

            def search(self, model, filter, cursor, page_size):
                items, next_cursor = _guard(adapter.search, model, _json(filter, "the filter"), cursor, page_size)
                return t.Page(items=[_to_wit_record(r) for r in items], next_cursor=next_cursor)

            def read(self, model, id):
                return _to_wit_record(_guard(adapter.read, model, id))

            def create(self, model, data):
                return str(_guard(adapter.create, model, _json(data, "the data")))

            def write(self, model, id, data):
                _guard(adapter.write, model, id, _json(data, "the data"))

            def delete(self, model, id):
                _guard(adapter.delete, model, id)

        out["Adapter"] = Adapter

    if listener is not None:

        class Listener(exports.Listener):
            def on_event(self, backend, event):
                return [_job_request(j) for j in _guard(listener.on_event, backend, _event(event))]

        out["Listener"] = Listener

    return out
