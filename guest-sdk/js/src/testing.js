// The host's imports in memory, so units run natively under `node --test`.
// `FakeHost` records what a unit did (log lines, bindings, jobs, state)
// and answers from what a test put in. Its methods and getters are exactly
// those of the host a unit gets inside the sandbox (`SandboxHost` in
// `component.js`; `test/parity.test.js` fails when they diverge); the
// fields in `INSPECTION` are for tests only: the real host has none.

export const INSPECTION = ['bindings', 'records', 'state', 'jobs', 'logs'];

export class FakeHost {
  constructor({ name = 'test-backend', kind = 'test', version = '1.0.0', baseUrl = 'http://127.0.0.1', settings = {} } = {}) {
    Object.assign(this, { name, kind, version, baseUrl, settings });
    this.bindings = new Map();
    this.records = new Map();
    this.state = new Map();
    this.jobs = [];
    this.logs = [];
  }

  bind(model, externalId, localId, syncDate = undefined) {
    this.bindings.set(`${model}\u0000${externalId}`, localId);
  }

  toLocal(model, externalId) {
    return this.bindings.get(`${model}\u0000${externalId}`) ?? null;
  }

  toExternal(model, localId) {
    for (const [key, local] of this.bindings) {
      const [m, external] = key.split('\u0000');
      if (m === model && local === localId) return external;
    }
    return null;
  }

  record(model, localId) {
    return this.records.get(`${model}\u0000${localId}`) ?? null;
  }

  getState(key) {
    return this.state.get(key) ?? null;
  }

  setState(key, value) {
    this.state.set(key, value);
  }

  enqueue(fn, args, options = {}) {
    this.jobs.push({ function: fn, args: JSON.parse(JSON.stringify(args)), ...options });
    return String(this.jobs.length);
  }

  log(level, message) {
    this.logs.push([level, message]);
  }
}
