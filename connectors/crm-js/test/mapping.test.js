import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Permanent } from '../../../guest-sdk/js/src/index.js';
import { FakeHost } from '../../../guest-sdk/js/src/testing.js';
import { MANIFEST, contactMapper } from '../mapping.js';

const local = (data, id = 'cus-1') => ({ model: 'customer', id, data, version: 1, updatedAt: '2026-01-02T03:04:05Z' });

test('a contact becomes a customer', () => {
  const record = {
    externalId: '1001',
    data: { id: '1001', properties: { email: 'Ana@Example.com', firstname: 'Ana', lastname: 'Silva', city: 'Porto' } },
  };
  assert.deepEqual(contactMapper.mapImport(new FakeHost(), 'customer', record), {
    email: 'ana@example.com',
    first_name: 'Ana',
    last_name: 'Silva',
    city: 'Porto',
  });
});

test('a new customer becomes a contact with the lifecycle stage', () => {
  const data = { email: 'bo@example.com', first_name: 'Bo', last_name: 'Lee' };
  assert.deepEqual(contactMapper.mapExport(new FakeHost(), 'customer', local(data), null), {
    properties: { email: 'bo@example.com', firstname: 'Bo', lastname: 'Lee', lifecyclestage: 'customer' },
  });
  const lead = new FakeHost({ settings: { lifecycle_stage: 'lead' } });
  assert.equal(contactMapper.mapExport(lead, 'customer', local(data), null).properties.lifecyclestage, 'lead');
});

test('an update sends only the changed fields', () => {
  const data = { email: 'bo@example.com', first_name: 'Bob', last_name: 'Lee' };
  assert.deepEqual(contactMapper.mapExport(new FakeHost(), 'customer', local(data), ['first_name']), {
    properties: { firstname: 'Bob' },
  });
});

test('a customer without a usable email is refused with the reason', () => {
  assert.throws(
    () => contactMapper.mapExport(new FakeHost(), 'customer', local({ first_name: 'X' }, 'cus-9'), null),
    (e) => e instanceof Permanent && /cus-9 has no email/.test(e.message),
  );
  assert.throws(
    () => contactMapper.mapExport(new FakeHost(), 'customer', local({ email: 'nope' }), null),
    (e) => e instanceof Permanent && /not an email address/.test(e.message),
  );
});

test('other models are refused by name', () => {
  assert.throws(
    () => contactMapper.mapImport(new FakeHost(), 'order', { externalId: '1', data: {} }),
    /'order' is not synced/,
  );
});

test('the manifest claims the narrower CRM version range', () => {
  assert.equal(MANIFEST.backendKind, 'crm');
  assert.equal(MANIFEST.backendVersions, '>=3.1.0, <4.0.0');
});
