import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Permanent, cursorPage, pageSize } from '../src/index.js';

const rec = (o) => ({ externalId: String(o.id), data: o, updatedAt: null });

test('a page gives its records and the next cursor', () => {
  const page = cursorPage({ results: [{ id: 1 }, { id: 2 }], paging: { next: { after: 2 } } }, rec);
  assert.deepEqual(page.items.map((r) => r.externalId), ['1', '2']);
  assert.equal(page.nextCursor, '2');
});

test('the last page has no cursor and other shapes are named', () => {
  assert.deepEqual(cursorPage({ results: [] }, rec), { items: [], nextCursor: null });
  assert.equal(cursorPage({ data: [{ id: 3 }], next: 'n' }, rec, { items: 'data', next: ['next'] }).nextCursor, 'n');
  assert.throws(() => cursorPage(null, rec), Permanent);
  assert.throws(() => cursorPage({ results: { id: 1 } }, rec), /not a list/);
});

test('the page size stays within the backend maximum', () => {
  assert.deepEqual([pageSize(500, 200), pageSize(0, 200), pageSize(25, 200)], [200, 1, 25]);
});
