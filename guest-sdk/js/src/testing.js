// The host's imports in memory, so units run natively under `node --test`.
// `FakeHost` records what a unit did (log lines, bindings, jobs, state)
// and answers from what a test put in. Its methods and getters are exactly
// those of the host a unit gets inside the sandbox (`SandboxHost` in
// `component.js`; `test/parity.test.js` fails when they diverge); the
// fields in `INSPECTION` are for tests only: the real host has none.

import { Response } from './http.js';

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

/**
 * A fake HTTP transport for native adapter tests: answers requests in
 * order from `[status, jsonBody, headers?]` and keeps what was sent. Pass
 * it as an adapter's (or `Client`'s) `transport`. A request past the
 * script fails the test, naming it.
 */
export function scriptedTransport(...answers) {
  const sent = [];
  const transport = (request) => {
    sent.push(request);
    if (answers.length === 0) throw new Error(`unexpected request ${request.method} ${request.url}: the script is used up`);
    const [status, body, headers = []] = answers.shift();
    const bytes = body === null || body === undefined ? new Uint8Array() : new TextEncoder().encode(JSON.stringify(body));
    return new Response(status, headers, bytes);
  };
  transport.sent = sent;
  transport.header = (i, name) => sent[i].headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1] ?? null;
  transport.body = (i) => JSON.parse(new TextDecoder().decode(sent[i].body));
  return transport;
}
