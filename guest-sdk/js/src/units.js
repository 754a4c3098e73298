// What a JavaScript unit implements, and the manifest it describes itself
// with. Units are plain objects whose methods take the `host` first (the
// binder, records, state, jobs, log and backend config — `FakeHost` in
// native tests, the real imports inside the sandbox) and plain values:
// JSON as objects, records as `{externalId, data, updatedAt}` or
// `{model, id, data, version, updatedAt}`.
//
// adapter:  check(host, settings) → string
//           search(host, model, filter, cursor, pageSize) → {items, nextCursor}
//           read(host, model, id) → record; create(host, model, data) → id
//           write(host, model, id, data); delete(host, model, id)
// mapper:   mapImport(host, model, record) → object
//           mapExport(host, model, record, changed | null) → object
//           dependencies(host, model, record) → [[model, externalId]]
//           exportDependencies(host, model, record) → [[model, localId]]
// listener: onEvent(host, backend, event) → [JobRequest]

export const OPERATIONS = ['search', 'read', 'create', 'write', 'delete', 'import', 'export'];

/** Checks a manifest and fills in its optional parts. */
export function manifest(m) {
  for (const key of ['name', 'version', 'backendKind', 'backendVersions']) {
    if (typeof m[key] !== 'string' || m[key] === '') {
      throw new TypeError(`manifest.${key} must be a non-empty string`);
    }
  }
  for (const [model, ops] of Object.entries(m.models ?? {})) {
    const unknown = ops.filter((o) => !OPERATIONS.includes(o));
    if (unknown.length > 0) {
      throw new TypeError(`model ${model}: unknown operations ${unknown.join(', ')}; use ${OPERATIONS.join(', ')}`);
    }
  }
  return {
    events: [],
    hosts: [],
    settingsSchema: {},
    secrets: [],
    ...m,
    models: { ...(m.models ?? {}) },
  };
}

/** A job a listener asks the host to enqueue. */
export function jobRequest(fn, args, options = {}) {
  return { function: fn, args, ...options };
}

/** The synchronizer's export of one local record to `backend`: the
 * `changed` fields of an update, or all (`null`). */
export function exportRecord(backend, model, localId, changed = null) {
  const args = { backend, model, local_id: localId };
  if (changed !== null) args.fields = [...changed];
  return jobRequest('junction.export-record', args, { description: `export ${model} ${localId} to ${backend}` });
}

/** The synchronizer's deletion of a local record's copy in `backend`. */
export function deleteRemote(backend, model, localId) {
  return jobRequest(
    'junction.delete-remote',
    { backend, model, local_id: localId },
    { description: `delete ${model} ${localId} in ${backend}` },
  );
}

/** The synchronizer's import of one backend record. */
export function importRecord(backend, model, externalId) {
  return jobRequest(
    'junction.import-record',
    { backend, model, external_id: String(externalId) },
    { description: `import ${model} ${externalId} from ${backend}` },
  );
}

/** The synchronizer's deletion of the local record bound to a record the
 * backend deleted; `verify` deletes only if the backend answers not-found
 * for it when the job runs. */
export function deleteLocal(backend, model, externalId, verify = true) {
  return jobRequest(
    'junction.delete-local',
    { backend, model, external_id: String(externalId), verify },
    { description: `delete local ${model} of ${externalId} in ${backend}` },
  );
}

/** One of the connector's own tasks (declared in its features). */
export function task(backend, name, args) {
  return jobRequest('junction.task', { backend, task: name, args }, { description: `task ${name} for ${backend}` });
}

/**
 * What a unit offers beyond the 0.1.1 contract (the `full-connector`
 * worlds), checked: `matchKeys` as `[model, field]` pairs (natural keys of
 * local data, for adoption), `find` and `listIds` (models), `webhooks`
 * (names), `tasks` as `[name, description]` pairs.
 */
export function features({ matchKeys = [], find = [], listIds = [], webhooks = [], tasks = [] } = {}) {
  const slug = /^[a-z0-9][a-z0-9-]{0,63}$/;
  for (const name of [...webhooks, ...tasks.map(([n]) => n)]) {
    if (!slug.test(name)) throw new Error(`features: ${JSON.stringify(name)} is not a name of lowercase letters, digits and '-'`);
  }
  return { matchKeys, find, listIds, webhooks, tasks };
}
