import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeHost } from '../../../guest-sdk/js/src/testing.js';
import { customerListener } from '../listener.js';

const event = (name, model, localId, changedFields = [], originBackend = null) => ({
  name,
  model,
  localId,
  changedFields,
  payload: null,
  originBackend,
});
const on = (e) => customerListener.onEvent(new FakeHost(), 'crm', e);

test('a new customer is exported whole', () => {
  const [job] = on(event('record-created', 'customer', 'cus-1', ['email', 'first_name'], 'shop'));
  assert.equal(job.function, 'junction.export-record');
  assert.deepEqual(job.args, { backend: 'crm', model: 'customer', local_id: 'cus-1' });
});

test('a change exports only the fields the CRM keeps', () => {
  const [job] = on(event('record-written', 'customer', 'cus-1', ['first_name', 'loyalty_points']));
  assert.deepEqual(job.args.fields, ['first_name']);
  assert.deepEqual(on(event('record-written', 'customer', 'cus-1', ['loyalty_points'])), []);
});

test('a deleted customer is deleted in the CRM', () => {
  const [job] = on(event('record-deleted', 'customer', 'cus-1'));
  assert.equal(job.function, 'junction.delete-remote');
});

test('changes from the CRM itself and other models are skipped', () => {
  assert.deepEqual(on(event('record-written', 'customer', 'cus-1', ['email'], 'crm')), []);
  assert.deepEqual(on(event('record-created', 'order', 'ord-1', ['number'])), []);
});
