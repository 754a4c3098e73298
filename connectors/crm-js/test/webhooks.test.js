// The webhook and lookup parts natively, as the Python connector's tests.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeHost, scriptedTransport } from '../../../guest-sdk/js/src/testing.js';
import { CrmAdapter } from '../adapter.js';
import { contactWebhooks } from '../webhooks.js';

const TOKEN = [200, { access_token: 'tok-1', token_type: 'bearer', expires_in: 1800 }];
const hook = (body) => ({ name: 'contacts', headers: [['content-type', 'application/json']], body: JSON.stringify(body) });

test('changes become imports and checked deletions of customers', () => {
  const jobs = contactWebhooks.onWebhook(
    new FakeHost(),
    'crm',
    hook([
      { objectId: 7, subscriptionType: 'contact.propertyChange' },
      { objectId: 8, subscriptionType: 'contact.deletion' },
      { objectId: 9, subscriptionType: 'company.creation' },
    ]),
  );
  assert.deepEqual(
    jobs.map((j) => [j.function, j.args]),
    [
      ['junction.import-record', { backend: 'crm', model: 'customer', external_id: '7' }],
      ['junction.delete-local', { backend: 'crm', model: 'customer', external_id: '8', verify: true }],
    ],
  );
});

test('a body that is not a change list is refused by name', () => {
  assert.throws(() => contactWebhooks.onWebhook(new FakeHost(), 'crm', hook({ objectId: 1 })), /list of changes/);
});

test('find searches contacts by email and listIds pages ids alone', () => {
  const script = scriptedTransport(
    TOKEN,
    [200, { total: 1, results: [{ id: '42', properties: { email: 'ada@example.com' } }] }],
    [200, { total: 3, results: [{ id: '1' }, { id: '2' }], paging: { next: { after: '2' } } }],
  );
  const a = new CrmAdapter({ transport: script, clock: () => 1000 });
  const h = new FakeHost({ baseUrl: 'http://crm.test' });
  assert.deepEqual(a.find(h, 'customer', 'email', 'Ada@Example.com'), ['42']);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(script.sent[1].body)).filterGroups[0].filters[0], {
    propertyName: 'email',
    operator: 'EQ',
    value: 'ada@example.com',
  });
  assert.deepEqual(a.listIds(h, 'customer', null, 2), { ids: ['1', '2'], nextCursor: '2' });
  assert.throws(() => a.find(h, 'customer', 'phone', '1'), /only by email/);
});
