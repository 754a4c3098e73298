// The adapter against a scripted transport: what it sends, and what it
// does with the CRM's answers (tokens, paging, conflicts, errors). The
// end-to-end tests run it in the sandbox against the real `demo-crm`.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConfigError, RateLimited, Response } from '../../../guest-sdk/js/src/index.js';
import { FakeHost, scriptedTransport } from '../../../guest-sdk/js/src/testing.js';
import { CrmAdapter, TOKEN_STATE } from '../adapter.js';

const script = scriptedTransport;

const TOKEN = [200, { access_token: 'tok-1', token_type: 'bearer', expires_in: 1800 }];
const CONTACT = { id: '1001', properties: { email: 'a@b.c' }, updatedAt: '2026-01-01T00:00:00.000Z' };

const adapter = (transport, now = 1000) => new CrmAdapter({ transport, clock: () => now });
const host = () => new FakeHost({ baseUrl: 'http://crm.test' });

test('the first call gets a token without credentials of its own and keeps it', () => {
  const s = script(TOKEN, [200, CONTACT], [200, CONTACT]);
  const h = host();
  adapter(s).read(h, 'customer', '1001');
  assert.equal(s.sent[0].url, 'http://crm.test/oauth/v1/token');
  assert.equal(new TextDecoder().decode(s.sent[0].body), 'grant_type=client_credentials');
  // The host adds the operator's client credentials to requests without any.
  assert.equal(s.header(0, 'authorization'), null);
  assert.equal(s.header(1, 'authorization'), 'Bearer tok-1');
  assert.equal(JSON.parse(h.state.get(TOKEN_STATE)).expires, 1000 + 1800 - 60);
  adapter(s).read(h, 'customer', '1001');
  assert.equal(s.sent.length, 3, 'the kept token is reused');
});

test('an expired token is renewed', () => {
  const s = script([200, { access_token: 'tok-2', expires_in: 1800 }], [200, CONTACT]);
  const h = host();
  h.setState(TOKEN_STATE, JSON.stringify({ token: 'old', expires: 999 }));
  adapter(s).read(h, 'customer', '1001');
  assert.equal(s.header(1, 'authorization'), 'Bearer tok-2');
});

test('a refused token gets a new one and one retry', () => {
  const refused = [401, { status: 'error', category: 'EXPIRED_AUTHENTICATION', message: 'expired' }];
  const s = script(TOKEN, refused, [200, { access_token: 'tok-2', expires_in: 1800 }], [200, CONTACT]);
  const h = host();
  assert.equal(adapter(s).read(h, 'customer', '1001').externalId, '1001');
  assert.equal(s.header(3, 'authorization'), 'Bearer tok-2');
  assert.deepEqual(h.logs, [['info', 'the backend refused the access token; getting a new one']]);
});

test('a token refused twice is a config error', () => {
  const refused = [401, { status: 'error', category: 'INVALID_AUTHENTICATION', message: 'bad client' }];
  const s = script(TOKEN, refused, TOKEN, refused);
  assert.throws(() => adapter(s).read(host(), 'customer', '1001'), ConfigError);
});

test('search pages by cursor, oldest change first', () => {
  const page = { total: 3, results: [CONTACT], paging: { next: { after: '1' } } };
  const s = script(TOKEN, [200, page], [200, { total: 3, results: [CONTACT, CONTACT] }]);
  const [a, h] = [adapter(s), host()];
  let found = a.search(h, 'customer', { 'updated-since': '2026-01-01T00:00:00Z' }, null, 500);
  assert.deepEqual(found.items.map((r) => r.externalId), ['1001']);
  assert.equal(found.nextCursor, '1');
  const body = s.body(1);
  assert.equal(body.limit, 200);
  assert.deepEqual(body.filterGroups[0].filters[0], {
    propertyName: 'lastmodifieddate',
    operator: 'GTE',
    value: '2026-01-01T00:00:00Z',
  });
  assert.equal(body.sorts[0].direction, 'ASCENDING');
  found = a.search(h, 'customer', {}, '1', 10);
  assert.equal(found.items.length, 2);
  assert.equal(found.nextCursor, null);
  assert.equal(s.body(2).after, '1');
  assert.equal('filterGroups' in s.body(2), false);
});

test('creating an existing email adopts that contact', () => {
  const conflict = [409, { status: 'error', category: 'CONFLICT', message: 'Contact already exists. Existing ID: 1042' }];
  const s = script(TOKEN, conflict, [200, CONTACT]);
  const data = { properties: { email: 'a@b.c', firstname: 'A' } };
  assert.equal(adapter(s).create(host(), 'customer', data), '1042');
  assert.equal(s.sent[2].method, 'PATCH');
  assert.ok(s.sent[2].url.endsWith('/crm/v3/objects/contacts/1042'));
  assert.deepEqual(s.body(2), data);
});

test("the CRM's rate limit is reported with its delay", () => {
  const s = script(TOKEN, [429, { status: 'error', category: 'RATE_LIMITS', message: 'slow down' }, [['Retry-After', '7']]]);
  assert.throws(() => adapter(s).delete(host(), 'customer', '1001'), (e) => e instanceof RateLimited && e.seconds === 7);
});
