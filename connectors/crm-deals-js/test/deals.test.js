// The companies-and-deals connector natively: deals mapped with their
// company's local id, and needing it first.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Retryable } from '../../../guest-sdk/js/src/index.js';
import { FakeHost } from '../../../guest-sdk/js/src/testing.js';
import { MANIFEST, dealsMapper } from '../deals.js';

const DEAL = {
  id: '77',
  properties: { dealname: 'Big one', amount: '1200.5', dealstage: 'closedwon', associatedcompanyid: '5' },
};

test('it claims only companies and deals, companies first', () => {
  assert.deepEqual(Object.keys(MANIFEST.models), ['company', 'deal']);
});

test("a deal maps with its company's local id and needs it first", () => {
  const host = new FakeHost();
  const remote = { externalId: '77', data: DEAL, updatedAt: null };
  assert.deepEqual(dealsMapper.dependencies(host, 'deal', remote), [['company', '5']]);
  assert.throws(() => dealsMapper.mapImport(host, 'deal', remote), Retryable);
  host.bind('company', '5', 'c-5');
  assert.deepEqual(dealsMapper.mapImport(host, 'deal', remote), { name: 'Big one', stage: 'closedwon', amount: 1200.5, company: 'c-5' });
});
