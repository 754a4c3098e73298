// Search helpers for cursor-paged APIs, as the Python SDK's
// `junction_guest.paging`: the host calls `search` once per page and
// passes back the cursor the previous page returned.
//
//   const found = api.json('POST', '/crm/v3/objects/contacts/search', { body: { limit: pageSize(wanted, 200) } });
//   return cursorPage(found, toRecord);

import { Permanent } from './errors.js';

/** The host's page size, within 1 and the backend's `maximum`. */
export function pageSize(wanted, maximum) {
  return Math.max(1, Math.min(Math.trunc(Number(wanted)) || 1, maximum));
}

/**
 * One page of a cursor-paged answer: its `items` made records by `record`,
 * and the cursor at the `next` path (null on the last page). An answer of
 * another shape is a permanent error naming it.
 */
export function cursorPage(answer, record, { items = 'results', next = ['paging', 'next', 'after'] } = {}) {
  if (answer === null || typeof answer !== 'object' || Array.isArray(answer)) {
    throw new Permanent(`the search answered ${JSON.stringify(answer)?.slice(0, 100)}, not an object with '${items}'`);
  }
  const found = answer[items] ?? [];
  if (!Array.isArray(found)) throw new Permanent(`the search answer's '${items}' is not a list`);
  let cursor = answer;
  for (const key of next) cursor = cursor !== null && typeof cursor === 'object' ? cursor[key] : undefined;
  return { items: found.map(record), nextCursor: cursor === undefined || cursor === null ? null : String(cursor) };
}
