// OAuth2 client credentials: the token is fetched once, kept in state
// until shortly before it expires, renewed once on a 401.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConfigError, OAuthClient, TOKEN_MARGIN_SECONDS, TOKEN_STATE } from '../src/index.js';
import { FakeHost, scriptedTransport } from '../src/testing.js';

const TOKEN = [200, { access_token: 'tok-1', expires_in: 1800 }];
const client = (transport, host, options = {}) =>
  new OAuthClient(host, '/oauth/token', { transport, clock: () => 1000, ...options });
const withToken = (token, expires) => {
  const host = new FakeHost();
  host.setState(TOKEN_STATE, JSON.stringify({ token, expires }));
  return host;
};

test('the token is fetched once and kept in state', () => {
  const host = new FakeHost();
  const s = scriptedTransport(TOKEN, [200, { n: 1 }], [200, { n: 2 }]);
  assert.deepEqual(client(s, host).json('GET', '/a'), { n: 1 });
  assert.deepEqual(client(s, host).json('GET', '/b'), { n: 2 });
  assert.deepEqual(s.sent.map((r) => r.url), ['http://127.0.0.1/oauth/token', 'http://127.0.0.1/a', 'http://127.0.0.1/b']);
  assert.equal(s.header(0, 'authorization'), null, 'the host adds the client credentials');
  assert.equal(new TextDecoder().decode(s.sent[0].body), 'grant_type=client_credentials');
  assert.equal(s.header(2, 'Authorization'), 'Bearer tok-1');
  assert.deepEqual(JSON.parse(host.getState(TOKEN_STATE)), { token: 'tok-1', expires: 1000 + 1800 - TOKEN_MARGIN_SECONDS });
});

test('an expired token is renewed before the request, with the scope', () => {
  const s = scriptedTransport(TOKEN, [200, {}]);
  client(s, withToken('old', 999), { scope: 'crm.read' }).json('GET', '/a');
  assert.equal(new TextDecoder().decode(s.sent[0].body), 'grant_type=client_credentials&scope=crm.read');
  assert.equal(s.header(1, 'authorization'), 'Bearer tok-1');
});

test('a refused token is renewed once, then the refusal stands', () => {
  const refused = [401, { message: 'expired' }];
  const host = withToken('revoked', 5000);
  const s = scriptedTransport(refused, [200, { access_token: 'tok-2', expires_in: 60 }], [200, { ok: 1 }]);
  assert.deepEqual(client(s, host).json('GET', '/a'), { ok: 1 });
  assert.equal(s.header(2, 'authorization'), 'Bearer tok-2');
  assert.ok(host.logs.some(([, m]) => m.includes('new one')));
  const again = scriptedTransport(refused, TOKEN, refused);
  assert.throws(() => client(again, withToken('x', 5000)).json('GET', '/a'), ConfigError);
  assert.equal(again.sent.length, 3);
});

test('a token answer without a token is a config error', () => {
  const s = scriptedTransport([200, { token_type: 'bearer' }]);
  assert.throws(() => client(s, new FakeHost()).json('GET', '/a'), /without an access_token/);
});

test('the scripted transport names an unexpected request', () => {
  assert.throws(() => client(scriptedTransport(), withToken('t', 5000)).json('GET', '/a'), /unexpected request GET http:\/\/127.0.0.1\/a/);
});
