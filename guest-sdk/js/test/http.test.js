import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { Client, ConfigError, NotFound, Permanent, RateLimited, Response, Retryable, TransportError } from '../src/index.js';
import { nodeTransport } from '../src/node.js';

// The server runs in a worker: the client blocks this thread while it waits.
const SERVER = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const status = Number(req.url.split('?')[0].slice(1)) || 200;
    const headers = { 'content-type': 'application/json' };
    if (status === 429 || status === 503) headers['retry-after'] = '7';
    res.writeHead(status, headers);
    res.end(JSON.stringify({ message: 'status ' + status, method: req.method, url: req.url, body,
      contentType: req.headers['content-type'] ?? null, accept: req.headers.accept ?? null }));
  });
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;

let worker;
let client;

before(async () => {
  worker = new Worker(SERVER, { eval: true });
  const port = await new Promise((resolve) => worker.once('message', resolve));
  client = new Client(`http://127.0.0.1:${port}/`, { transport: nodeTransport });
});

after(() => worker.terminate());

test('JSON requests carry their body, query and headers', () => {
  const got = client.postJson('/200', { a: 1 }, { query: { q: 'x y', skip: null } });
  assert.equal(got.method, 'POST');
  assert.equal(got.url, '/200?q=x%20y');
  assert.equal(got.body, '{"a":1}');
  assert.equal(got.contentType, 'application/json');
  assert.equal(got.accept, 'application/json');
  const form = client.request('POST', '/200', { form: { grant_type: 'client_credentials' } }).json();
  assert.equal(form.body, 'grant_type=client_credentials');
  assert.equal(form.contentType, 'application/x-www-form-urlencoded');
  assert.equal(client.patchJson('/204', { b: 2 }), null);
});

test('statuses become the contract errors', () => {
  assert.throws(() => client.getJson('/429'), (e) => e instanceof RateLimited && e.seconds === 7);
  assert.throws(() => client.getJson('/503'), (e) => e instanceof Retryable && e.seconds === 7);
  assert.throws(() => client.getJson('/500'), (e) => e instanceof Retryable && /HTTP 500: status 500/.test(e.message));
  assert.throws(() => client.getJson('/404'), NotFound);
  assert.throws(() => client.getJson('/401'), (e) => e instanceof ConfigError && /credentials/.test(e.message));
  assert.throws(() => client.getJson('/403'), ConfigError);
  assert.throws(() => client.getJson('/422'), (e) => e instanceof Permanent && e.message === 'HTTP 422: status 422');
});

test('a refused connection is retryable and names the host', () => {
  const nowhere = new Client('http://127.0.0.1:9', { transport: nodeTransport });
  assert.throws(() => nowhere.getJson('/'), (e) => e instanceof Retryable && /request to 127\.0\.0\.1:9 failed/.test(e.message));
});

test('a denied request is a config error naming the host', () => {
  const denied = new Client('http://evil.example.com', {
    transport: () => {
      throw new TransportError('evil.example.com', 'HTTP-request-denied', true);
    },
  });
  assert.throws(
    () => denied.getJson('/'),
    (e) => e instanceof ConfigError && /evil\.example\.com denied by the host \(HTTP-request-denied\)/.test(e.message),
  );
});

test('a denied internal address names allow_internal', () => {
  const internal = new Client('http://10.0.0.5', {
    transport: () => {
      throw new TransportError('10.0.0.5:80', 'destination-ip-prohibited', true);
    },
  });
  assert.throws(
    () => internal.getJson('/'),
    (e) => e instanceof ConfigError && /internal address.*allow_internal/.test(e.message),
  );
});

test('without a transport the error says how to get one', () => {
  assert.throws(() => new Client('http://x').getJson('/'), (e) => e instanceof ConfigError && /wasi-http\.js/.test(e.message));
});

test('Retry-After as an HTTP date, and bodies that are not JSON', () => {
  const now = Date.parse('Wed, 21 Oct 2026 07:28:00 GMT');
  const r = new Response(429, [['Retry-After', 'Wed, 21 Oct 2026 07:28:30 GMT']]);
  assert.equal(r.retryAfter(now), 30);
  assert.equal(new Response(429, [['retry-after', 'soon']]).retryAfter(now), null);
  assert.throws(() => new Response(200, [], new TextEncoder().encode('<html>')).json(), (e) => e instanceof Permanent && /not JSON/.test(e.message));
});

test("a message keeps its description (Tryton's particulars) or a problem's detail", () => {
  const body = (v) => new TextEncoder().encode(JSON.stringify(v));
  const tryton = new Response(400, [], body({ status: 400, message: 'A value is required.', description: 'sale line 3' }));
  assert.equal(tryton.message(), 'A value is required.: sale line 3');
  assert.equal(new Response(409, [], body({ title: 'Out of stock', detail: 'MB-1 has 0 left' })).message(), 'Out of stock: MB-1 has 0 left');
  assert.equal(new Response(400, [], body({ message: 'same', description: 'same' })).message(), 'same');
});
