// An HTTP client with JSON helpers that speaks the contract's errors.
//
// Calls are synchronous, as a unit's exports are: inside a component the
// transport is `wasi:http` (import `wasi-http.js` in the entry of a unit
// built for a world with `wasi:http/outgoing-handler`; the host checks
// each request against the backend's allowlist and adds its credentials),
// natively it is `node.js`'s `nodeTransport`, so an adapter can be tried
// against a real server under `node --test`. Statuses become contract
// errors the same way in both: 429 → rate-limited and 503 → retryable
// after `Retry-After`, other 5xx → retryable, 404 → not-found, 401/403 →
// config, other 4xx → permanent. A request the host denied is a config
// error naming the host.

import { ConfigError, DEFAULT_RETRY_SECONDS, NotFound, Permanent, RateLimited, Retryable } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class Request {
  /** `headers`: `[name, value]` pairs; `body`: a `Uint8Array`. */
  constructor(method, url, headers = [], body = new Uint8Array()) {
    Object.assign(this, { method, url, headers, body });
  }
}

export class Response {
  constructor(status, headers = [], body = new Uint8Array()) {
    Object.assign(this, { status, headers, body });
  }

  header(name) {
    name = name.toLowerCase();
    return this.headers.find(([k]) => k.toLowerCase() === name)?.[1] ?? null;
  }

  text() {
    return decoder.decode(this.body);
  }

  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      throw new Permanent(`the backend's answer is not JSON: ${e.message}`);
    }
  }

  /** `Retry-After` in seconds from `now` (delta-seconds or an HTTP date). */
  retryAfter(now = Date.now()) {
    const value = (this.header('retry-after') ?? '').trim();
    if (!value) return null;
    if (/^\d+$/.test(value)) return Number(value);
    const at = Date.parse(value);
    return Number.isNaN(at) ? null : Math.max(0, Math.trunc((at - now) / 1000));
  }

  /**
   * The backend's error text: `message` (or a problem's `title`) of a JSON
   * body with its `description` or `detail` when there is one (Tryton puts
   * the particulars there), else the body.
   */
  message() {
    let body;
    try {
      body = JSON.parse(this.text());
    } catch {
      body = undefined;
    }
    const field = (...names) => {
      for (const name of names) {
        const value = body !== null && typeof body === 'object' ? body[name] : undefined;
        if (typeof value === 'string' && value.trim()) return value.trim();
      }
      return undefined;
    };
    let text = field('message', 'title');
    const more = field('description', 'detail');
    if (text !== undefined && more !== undefined && more !== text) text = `${text}: ${more}`;
    if (text === undefined) text = this.text();
    return text.length <= 300 ? text : `${text.slice(0, 300)}…`;
  }

  /** The response if it is a success (2xx), else throws the contract error. */
  raiseForStatus() {
    const status = this.status;
    if (status >= 200 && status < 300) return this;
    const message = `HTTP ${status}: ${this.message()}`;
    if (status === 429) throw new RateLimited(message, this.retryAfter() ?? 60);
    if (status === 503) throw new Retryable(message, this.retryAfter() ?? DEFAULT_RETRY_SECONDS);
    if (status === 404) throw new NotFound(message);
    if (status === 401 || status === 403) {
      throw new ConfigError(`${message} (the backend refused the credentials the operator configured)`);
    }
    if (status >= 400 && status < 500) throw new Permanent(message);
    throw new Retryable(message);
  }
}

/** A request that got no answer. */
export class TransportError extends Error {
  constructor(host, code, denied = false) {
    super(code);
    Object.assign(this, { host, code, denied });
  }

  toContract() {
    const code = String(this.code).toLowerCase().replace(/[-_]/g, '');
    if (this.denied && (code.includes('destinationipprohibited') || code.includes('destinationipunroutable'))) {
      return new ConfigError(
        `request to ${this.host} denied by the host (${this.code}): it is an internal address; ask the operator to list ${this.host} in the backend's allow_internal`,
      );
    }
    if (this.denied) {
      return new ConfigError(
        `request to ${this.host} denied by the host (${this.code}); ask the operator to allow it in the backend's allowlist`,
      );
    }
    return new Retryable(`request to ${this.host} failed (${this.code})`);
  }
}

function noTransport() {
  throw new ConfigError(
    "no HTTP transport: inside a component, import the SDK's wasi-http.js in the entry and build for a world " +
      "that imports wasi:http/outgoing-handler; natively, pass nodeTransport from the SDK's node.js",
  );
}

let defaultTransport = noTransport;

/** The transport clients use when given none (`wasi-http.js` sets it on import). */
export function setDefaultTransport(transport) {
  defaultTransport = transport;
}

function query(params) {
  return Object.entries(params ?? {})
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
    .join('&');
}

/** JSON over HTTP against one base URL; every failure is a contract error. */
export class Client {
  constructor(baseUrl, { headers = {}, transport = null } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.headers = { ...headers };
    this.transport = transport;
  }

  url(path, params = null) {
    let url = path.includes('://') ? path : `${this.baseUrl}/${path.replace(/^\/+/, '')}`;
    const q = query(params);
    if (q) url += (url.includes('?') ? '&' : '?') + q;
    return url;
  }

  /** Sends as is: transport failures become contract errors, statuses do not. */
  send(request) {
    try {
      return (this.transport ?? defaultTransport)(request);
    } catch (e) {
      if (e instanceof TransportError) throw e.toContract();
      throw e;
    }
  }

  request(method, path, { query: params = null, json, form = null, headers = {} } = {}) {
    const all = { ...this.headers, ...headers };
    const has = (name) => Object.keys(all).some((k) => k.toLowerCase() === name);
    let body = new Uint8Array();
    if (json !== undefined) {
      body = encoder.encode(JSON.stringify(json));
      if (!has('content-type')) all['Content-Type'] = 'application/json';
    } else if (form !== null) {
      body = encoder.encode(query(form));
      if (!has('content-type')) all['Content-Type'] = 'application/x-www-form-urlencoded';
    }
    if (!has('accept')) all.Accept = 'application/json';
    const response = this.send(new Request(method.toUpperCase(), this.url(path, params), Object.entries(all), body));
    return response.raiseForStatus();
  }

  getJson(path, options = {}) {
    return this.request('GET', path, options).json();
  }

  postJson(path, json, options = {}) {
    const r = this.request('POST', path, { ...options, json });
    return r.body.length ? r.json() : null;
  }

  patchJson(path, json, options = {}) {
    const r = this.request('PATCH', path, { ...options, json });
    return r.body.length ? r.json() : null;
  }

  delete(path, options = {}) {
    this.request('DELETE', path, options);
  }
}
