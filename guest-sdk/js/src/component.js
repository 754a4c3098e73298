// The glue between a JavaScript unit and componentize-js's bindings;
// importable only inside a component (it imports the host's WIT
// interfaces). A connector's entry module ends with
//
//   export const { describe, mapper } = exportUnits({ manifest: MANIFEST, mapper: contactMapper });
//
// which gives componentize-js the export objects it looks for: they
// convert WIT values to the SDK's plain ones, call the unit with the
// sandbox's host, and turn `ConnectorError`s into the contract's `error`
// variant. Any other exception traps the call: it is a bug in the
// connector, and the host reports it as one.

import * as binder from 'junction:connector/binder@0.1.2';
import * as config from 'junction:connector/config@0.1.2';
import * as jobs from 'junction:connector/jobs@0.1.2';
import * as log from 'junction:connector/log@0.1.2';
import * as records from 'junction:connector/records@0.1.2';
import * as state from 'junction:connector/state@0.1.2';

import { ConnectorError, Permanent } from './errors.js';
import { manifest as checkManifest } from './units.js';

/**
 * The host's imports, with the same methods as `testing.FakeHost`
 * (`test/parity.test.js` fails when they diverge).
 */
class SandboxHost {
  get name() {
    return config.backend().name;
  }
  get kind() {
    return config.backend().kind;
  }
  get settings() {
    return JSON.parse(config.settings());
  }
  get baseUrl() {
    return config.backend().baseUrl;
  }
  get version() {
    return config.backend().version;
  }
  toLocal(model, externalId) {
    return binder.toLocal(model, externalId) ?? null;
  }
  toExternal(model, localId) {
    return binder.toExternal(model, localId) ?? null;
  }
  bind(model, externalId, localId, syncDate = undefined) {
    binder.bind(model, externalId, localId, syncDate);
  }
  record(model, localId) {
    const r = records.get(model, localId);
    return r === undefined ? null : JSON.parse(r.data);
  }
  getState(key) {
    return state.get(key) ?? null;
  }
  setState(key, value) {
    state.set(key, value);
  }
  enqueue(fn, args, options = {}) {
    return jobs.enqueue(witJobRequest({ function: fn, args, ...options }));
  }
  log(level, message) {
    log.log(level, message);
  }
}

const HOST = new SandboxHost();

// componentize-js lowers a thrown value whose `payload` is the `err` case
// of the export's `result`.
function contractError(witError) {
  const e = new Error(witError.val?.message ?? witError.val);
  e.payload = witError;
  return e;
}

function guard(f, ...args) {
  try {
    return f(HOST, ...args);
  } catch (e) {
    if (e instanceof ConnectorError) throw contractError(e.toWit());
    throw e;
  }
}

function parse(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw contractError(new Permanent(`${what} is not JSON: ${e.message}`).toWit());
  }
}

const remote = (r) => ({ externalId: r.externalId, data: parse(r.data, 'the record'), updatedAt: r.updatedAt ?? null });
const local = (r) => ({ model: r.model, id: r.id, data: parse(r.data, 'the record'), version: r.version, updatedAt: r.updatedAt });
const witRemote = (r) => ({ externalId: String(r.externalId), data: JSON.stringify(r.data), updatedAt: r.updatedAt ?? undefined });

function witJobRequest(j) {
  return {
    function: j.function,
    args: JSON.stringify(j.args),
    priority: j.priority ?? undefined,
    eta: j.eta ?? undefined,
    channel: j.channel ?? undefined,
    identityKey: j.identityKey ?? undefined,
    maxRetries: j.maxRetries ?? undefined,
    description: j.description ?? undefined,
  };
}

function witManifest(m) {
  m = checkManifest(m);
  return {
    name: m.name,
    version: m.version,
    backendKind: m.backendKind,
    backendVersions: m.backendVersions,
    models: Object.entries(m.models).map(([name, ops]) => ({
      name,
      operations: Object.fromEntries(ops.map((o) => [o, true])),
    })),
    events: [...m.events],
    hosts: [...m.hosts],
    settingsSchema: JSON.stringify(m.settingsSchema),
    secrets: [...m.secrets],
  };
}

function declined(what) {
  throw contractError(new Permanent(`this connector does not ${what}`).toWit());
}

/**
 * The export objects for componentize-js, for the units given. With
 * `features` (from `features({...})`), the optional exports of the
 * `full-connector` worlds too: `lookup` (`listIds`, `find`), `webhooks`
 * (`onWebhook`) and `tasks` (`run`); one not given declines.
 */
export function exportUnits({
  manifest,
  adapter = null,
  mapper = null,
  listener = null,
  features = null,
  lookup = null,
  webhooks = null,
  tasks = null,
}) {
  const described = witManifest(manifest);
  const out = { describe: { describe: () => described } };
  if (features !== null) {
    const declared = {
      listIds: [...features.listIds],
      find: [...features.find],
      matchKeys: features.matchKeys.map(([model, field]) => ({ model, field })),
      webhooks: [...features.webhooks],
      tasks: features.tasks.map(([name, description]) => ({ name, description })),
    };
    out.features = { features: () => declared };
    out.lookup = {
      listIds: (model, cursor, pageSize) => {
        if (lookup === null) declined(`list the ids of ${model} records`);
        const page = guard(lookup.listIds.bind(lookup), model, cursor ?? null, pageSize);
        return { ids: page.ids.map(String), nextCursor: page.nextCursor ?? undefined };
      },
      find: (model, field, value) => {
        if (lookup === null) declined(`find ${model} records by ${field}`);
        return guard(lookup.find.bind(lookup), model, field, value).map(String);
      },
    };
    out.webhooks = {
      onWebhook: (backend, hook) => {
        if (webhooks === null) declined(`take webhook ${hook.name}`);
        const call = { name: hook.name, headers: hook.headers.map(([n, v]) => [n, v]), body: hook.body };
        return guard(webhooks.onWebhook.bind(webhooks), backend, call).map(witJobRequest);
      },
    };
    out.tasks = {
      run: (name, args) => {
        if (tasks === null) declined(`run task ${name}`);
        return String(guard(tasks.run.bind(tasks), name, parse(args, "the task's arguments")));
      },
    };
  }
  if (mapper !== null) {
    out.mapper = {
      mapImport: (model, record) => JSON.stringify(guard(mapper.mapImport.bind(mapper), model, remote(record))),
      mapExport: (model, record, changed) =>
        JSON.stringify(guard(mapper.mapExport.bind(mapper), model, local(record), changed ?? null)),
      dependencies: (model, record) =>
        (mapper.dependencies ? guard(mapper.dependencies.bind(mapper), model, remote(record)) : []).map(([m, id]) => ({
          model: m,
          externalId: String(id),
        })),
      exportDependencies: (model, record) =>
        (mapper.exportDependencies ? guard(mapper.exportDependencies.bind(mapper), model, local(record)) : []).map(
          ([m, id]) => ({ model: m, localId: String(id) }),
        ),
    };
  }
  if (adapter !== null) {
    out.adapter = {
      check: (settings) => guard(adapter.check.bind(adapter), parse(settings, 'the settings')),
      search: (model, filter, cursor, pageSize) => {
        const page = guard(adapter.search.bind(adapter), model, parse(filter, 'the filter'), cursor ?? null, pageSize);
        return { items: page.items.map(witRemote), nextCursor: page.nextCursor ?? undefined };
      },
      read: (model, id) => witRemote(guard(adapter.read.bind(adapter), model, id)),
      create: (model, data) => String(guard(adapter.create.bind(adapter), model, parse(data, 'the data'))),
      write: (model, id, data) => {
        guard(adapter.write.bind(adapter), model, id, parse(data, 'the data'));
      },
      delete: (model, id) => {
        guard(adapter.delete.bind(adapter), model, id);
      },
    };
  }
  if (listener !== null) {
    out.listener = {
      onEvent: (backend, event) =>
        guard(listener.onEvent.bind(listener), backend, {
          name: event.name,
          model: event.model,
          localId: event.localId ?? null,
          changedFields: [...event.changedFields],
          payload: event.payload ? parse(event.payload, 'the event payload') : null,
          originBackend: event.originBackend ?? null,
        }).map(witJobRequest),
    };
  }
  return out;
}
