// Talks to the CRM's v3 API, as the Python connector's adapter does,
// authenticated with OAuth2 client credentials through the SDK's
// `OAuthClient` (the host adds the client's id and secret to the token
// request only; the token is shared through the backend's state).

import { OAuthClient, Permanent, TOKEN_STATE, cursorPage, pageSize } from '../../guest-sdk/js/src/index.js';

export { TOKEN_STATE };
export const MAX_SEARCH_LIMIT = 200;

const OBJECTS = { customer: 'contacts' };
const PROPERTIES = ['email', 'firstname', 'lastname', 'phone', 'city', 'country', 'lastmodifieddate'];

function objects(model) {
  const o = OBJECTS[model];
  if (o === undefined) throw new Permanent(`model '${model}' is not synced by this connector; it knows customer`);
  return o;
}

function record(obj) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || !('id' in obj)) {
    throw new Permanent(`the CRM answered with something that is not an object: ${JSON.stringify(obj).slice(0, 200)}`);
  }
  return { externalId: String(obj.id), data: obj, updatedAt: obj.updatedAt ?? null };
}

// "Contact already exists. Existing ID: 1042" → "1042".
function existingId(response) {
  let message;
  try {
    message = response.json()?.message;
  } catch {
    return null;
  }
  return typeof message === 'string' ? (/Existing ID: (\d+)/.exec(message)?.[1] ?? null) : null;
}

export class CrmAdapter {
  /** `transport`: the SDK's default when null; `clock`: seconds since the epoch. */
  constructor({ transport = null, clock = () => Date.now() / 1000 } = {}) {
    this.transport = transport;
    this.clock = clock;
  }

  // -- HTTP with the token ---------------------------------------------

  api(host) {
    return new OAuthClient(host, '/oauth/v1/token', { transport: this.transport, clock: this.clock });
  }

  send(host, method, path, options) {
    return this.api(host).send(method, path, options);
  }

  json(host, method, path, options) {
    return this.api(host).json(method, path, options);
  }

  // -- the adapter -----------------------------------------------------

  check(host) {
    const found = this.json(host, 'POST', '/crm/v3/objects/contacts/search', { body: { limit: 1 } });
    return `connected to the CRM at ${host.baseUrl}: ${found?.total ?? 0} contacts`;
  }

  search(host, model, filter, cursor, wanted) {
    const body = {
      limit: pageSize(wanted, MAX_SEARCH_LIMIT),
      properties: PROPERTIES,
      // Oldest change first: a contact changing during the scan moves
      // behind the pages already read.
      sorts: [{ propertyName: 'lastmodifieddate', direction: 'ASCENDING' }],
    };
    const since = filter['updated-since'];
    if (since) {
      body.filterGroups = [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE', value: since }] }];
    }
    if (cursor) body.after = cursor;
    const found = this.json(host, 'POST', `/crm/v3/objects/${objects(model)}/search`, { body });
    return cursorPage(found, record);
  }

  read(host, model, externalId) {
    return record(
      this.json(host, 'GET', `/crm/v3/objects/${objects(model)}/${externalId}`, {
        query: { properties: PROPERTIES.join(',') },
      }),
    );
  }

  create(host, model, data) {
    const o = objects(model);
    const response = this.send(host, 'POST', `/crm/v3/objects/${o}`, { body: data });
    if (response.status === 409) {
      // The contact exists already (emails are unique): adopt it and bring
      // it up to date, as a re-run of a lost create would want.
      const existing = existingId(response);
      if (existing !== null) {
        host.log('info', `${o} ${existing} has this email already; updating it instead`);
        this.write(host, model, existing, data);
        return existing;
      }
    }
    return record(response.raiseForStatus().json()).externalId;
  }

  write(host, model, externalId, data) {
    this.json(host, 'PATCH', `/crm/v3/objects/${objects(model)}/${externalId}`, { body: data });
  }

  delete(host, model, externalId) {
    this.json(host, 'DELETE', `/crm/v3/objects/${objects(model)}/${externalId}`);
  }

  // -- lookup (contract 0.1.2) ------------------------------------------

  /** Every contact's id, a page at a time, without their properties. */
  listIds(host, model, cursor, wanted) {
    const body = {
      limit: pageSize(wanted, MAX_SEARCH_LIMIT),
      properties: ['hs_object_id'],
      sorts: [{ propertyName: 'hs_object_id', direction: 'ASCENDING' }],
    };
    if (cursor) body.after = cursor;
    const found = this.json(host, 'POST', `/crm/v3/objects/${objects(model)}/search`, { body });
    const page = cursorPage(found, record);
    return { ids: page.items.map((r) => r.externalId), nextCursor: page.nextCursor };
  }

  /** The contacts whose email is `value` (unique in the CRM, without case). */
  find(host, model, field, value) {
    if (field !== 'email') throw new Permanent(`${model} records cannot be found by ${field} in the CRM; only by email`);
    const body = {
      limit: 10,
      properties: ['email'],
      filterGroups: [{ filters: [{ propertyName: 'email', operator: 'EQ', value: value.toLowerCase() }] }],
    };
    const found = this.json(host, 'POST', `/crm/v3/objects/${objects(model)}/search`, { body });
    return (found?.results ?? []).filter((o) => o && typeof o === 'object' && 'id' in o).map((o) => String(o.id));
  }
}
