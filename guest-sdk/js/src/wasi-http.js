// Requests through `wasi:http/outgoing-handler`, inside a component.
//
// Importable only in a unit built for a world that imports
// `wasi:http/outgoing-handler` (componentize-js resolves these imports
// from the world); importing it makes it the default transport of
// `http.js`'s clients. Blocking calls, not `fetch`: a unit's exports are
// synchronous, and the host's error code (an allowlist denial above all)
// must reach the connector rather than a generic network error.

import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, OutgoingBody, OutgoingRequest, httpErrorCode } from 'wasi:http/types@0.2.12';

import { Response, TransportError, setDefaultTransport } from './http.js';

const dispose = Symbol.dispose ?? Symbol.for('dispose');
const drop = (resource) => resource?.[dispose]?.();

const METHODS = new Set(['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch']);

// Codes by which the host says "not allowed", as opposed to "failed".
const DENIED = new Set(['http-request-denied', 'destination-ip-prohibited', 'destination-ip-unroutable']);

function failure(host, code) {
  const tag = String(code?.tag ?? code ?? 'unknown');
  return new TransportError(host, tag, DENIED.has(tag.toLowerCase()));
}

// The value of a WIT `result` the bindings hand over as `{tag, val}`
// (nested results are not turned into exceptions).
function ok(result, host) {
  if (result && typeof result === 'object' && (result.tag === 'ok' || result.tag === 'err')) {
    if (result.tag === 'err') throw failure(host, result.val);
    return result.val;
  }
  return result;
}

function payload(e) {
  return e?.payload ?? e;
}

/** The transport: one request, its whole answer. */
export function send(request) {
  const parts = /^(https?):\/\/([^/?#]+)([^#]*)/i.exec(request.url);
  if (!parts) {
    throw new TransportError(request.url, 'invalid url: only absolute http and https urls are supported');
  }
  const [, scheme, host, rest] = parts;
  let headers;
  try {
    const encoder = new TextEncoder();
    headers = Fields.fromList(request.headers.map(([k, v]) => [k, encoder.encode(String(v))]));
  } catch (e) {
    throw new TransportError(host, `invalid header: ${payload(e)?.tag ?? e}`);
  }
  const outgoing = new OutgoingRequest(headers);
  const method = request.method.toLowerCase();
  outgoing.setMethod(METHODS.has(method) ? { tag: method } : { tag: 'other', val: request.method });
  outgoing.setScheme({ tag: scheme.toLowerCase() === 'https' ? 'HTTPS' : 'HTTP' });
  outgoing.setAuthority(host);
  outgoing.setPathWithQuery(rest || '/');
  const body = outgoing.body();
  let future;
  try {
    future = handle(outgoing, undefined);
  } catch (e) {
    drop(body);
    throw failure(host, payload(e));
  }
  if (request.body.length) {
    const stream = body.write();
    try {
      // blocking-write-and-flush takes at most 4096 bytes a call.
      for (let i = 0; i < request.body.length; i += 4096) {
        stream.blockingWriteAndFlush(request.body.subarray(i, i + 4096));
      }
    } catch (e) {
      // The connection went away mid-body: a failed request, not a bug.
      drop(stream);
      drop(body);
      drop(future);
      throw new TransportError(host, `sending the request body failed (${payload(e)?.tag ?? e})`);
    }
    drop(stream);
  }
  OutgoingBody.finish(body, undefined);
  const pollable = future.subscribe();
  pollable.block();
  drop(pollable);
  const answer = future.get();
  drop(future);
  if (answer === undefined || answer === null) throw new TransportError(host, 'the response was lost');
  const response = ok(ok(answer, host), host);
  const status = response.status();
  const fields = response.headers();
  // Header values are bytes; latin-1 keeps every one of them.
  const responseHeaders = fields.entries().map(([k, v]) => [k, String.fromCharCode(...v)]);
  drop(fields);
  const incoming = response.consume();
  const stream = incoming.stream();
  const chunks = [];
  let size = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(65536n);
    } catch (e) {
      const err = payload(e);
      if (err?.tag === 'closed') break;
      drop(stream);
      const code = err?.tag === 'last-operation-failed' ? httpErrorCode(err.val) : undefined;
      if (code === undefined) throw new TransportError(host, 'reading the response failed');
      throw failure(host, code);
    }
    chunks.push(chunk);
    size += chunk.length;
  }
  drop(stream);
  drop(incoming);
  drop(response);
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  return new Response(status, responseHeaders, all);
}

setDefaultTransport(send);
