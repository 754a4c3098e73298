// {{name}} natively, on the SDK's fake host and scripted transport: what
// it sends, and what it makes of the answers. `npm test` runs these.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Permanent } from '@junction/guest';
import { FakeHost, scriptedTransport } from '@junction/guest/testing';

import { CompanyAdapter, MANIFEST, companyMapper } from '../connector.js';

const TOKEN = [200, { access_token: 'tok', expires_in: 1800 }];
const COMPANY = {
  id: '5',
  properties: { name: 'Acme', domain: 'acme.example', city: 'Lyon', country: 'FR' },
  updatedAt: '2026-02-01T00:00:00.000Z',
};
const host = () => new FakeHost({ baseUrl: 'http://crm.test' });

test('the manifest claims companies of crm 3', () => {
  assert.deepEqual(Object.keys(MANIFEST.models), ['company']);
  assert.equal(MANIFEST.backendKind, 'crm');
});

test('search sends the token, the page size and updated-since', () => {
  const s = scriptedTransport(TOKEN, [200, { results: [COMPANY], paging: { next: { after: '1' } } }]);
  const page = new CompanyAdapter({ transport: s }).search(host(), 'company', { 'updated-since': '2026-01-01T00:00:00Z' }, null, 500);
  assert.deepEqual(page.items.map((r) => r.externalId), ['5']);
  assert.equal(page.items[0].updatedAt, COMPANY.updatedAt);
  assert.equal(page.nextCursor, '1');
  assert.equal(s.sent[1].url, 'http://crm.test/crm/v3/objects/companies/search');
  assert.equal(s.header(1, 'authorization'), 'Bearer tok');
  const body = JSON.parse(new TextDecoder().decode(s.sent[1].body));
  assert.equal(body.limit, 200);
  assert.equal(body.filterGroups[0].filters[0].value, '2026-01-01T00:00:00Z');
});

test('read asks for the properties', () => {
  const s = scriptedTransport(TOKEN, [200, COMPANY]);
  const found = new CompanyAdapter({ transport: s }).read(host(), 'company', '5');
  assert.deepEqual(found.data, COMPANY);
  assert.match(s.sent[1].url, /^http:\/\/crm\.test\/crm\/v3\/objects\/companies\/5\?properties=name/);
});

test('an unknown model is refused by name', () => {
  assert.throws(() => new CompanyAdapter({ transport: scriptedTransport(TOKEN) }).search(host(), 'deal', {}, null, 10), Permanent);
});

test('a company maps to local fields', () => {
  const mapped = companyMapper.mapImport(host(), 'company', { externalId: '5', data: COMPANY, updatedAt: null });
  assert.deepEqual(mapped, { name: 'Acme', domain: 'acme.example', city: 'Lyon', country: 'FR' });
});
