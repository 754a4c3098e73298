// Talks to the CRM's v3 API, as the Python connector's adapter does.
//
// OAuth2 client credentials without the secret ever reaching this code:
// the operator configures the client id and secret as the backend's HTTP
// Basic credentials, which the host adds to requests that carry no
// `Authorization` of their own — here, only the token request. The access
// token is kept in the backend's state, so every call and every node
// shares it until shortly before it expires; a 401 for an expired or
// revoked token gets one new token and one retry.

import { Client, ConfigError, Permanent, Request } from '../../guest-sdk/js/src/index.js';

export const TOKEN_STATE = 'oauth.access-token';
// Renew this long before the CRM says a token expires, so that a request
// never leaves with a token about to lapse.
export const TOKEN_MARGIN_SECONDS = 60;
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

  client(host) {
    return new Client(host.baseUrl, { transport: this.transport });
  }

  newToken(host, client) {
    const answer = client.request('POST', '/oauth/v1/token', { form: { grant_type: 'client_credentials' } }).json();
    const token = answer?.access_token;
    if (typeof token !== 'string' || !token) {
      throw new ConfigError("the CRM's token endpoint answered without an access_token");
    }
    const lifetime = Math.trunc(Number(answer.expires_in ?? 0)) || 0;
    const expires = this.clock() + Math.max(0, lifetime - TOKEN_MARGIN_SECONDS);
    host.setState(TOKEN_STATE, JSON.stringify({ token, expires }));
    return token;
  }

  token(host, client) {
    const kept = host.getState(TOKEN_STATE);
    if (kept) {
      try {
        const saved = JSON.parse(kept);
        if (typeof saved.token === 'string' && saved.expires > this.clock()) return saved.token;
      } catch {
        // A damaged entry is replaced by a new token.
      }
    }
    return this.newToken(host, client);
  }

  send(host, method, path, { query = null, body } = {}) {
    const client = this.client(host);
    const headers = [['Accept', 'application/json']];
    let data = new Uint8Array();
    if (body !== undefined) {
      headers.push(['Content-Type', 'application/json']);
      data = new TextEncoder().encode(JSON.stringify(body));
    }
    const url = client.url(path, query);
    let token = this.token(host, client);
    for (let attempt = 1; ; attempt++) {
      const response = client.send(new Request(method, url, [...headers, ['Authorization', `Bearer ${token}`]], data));
      if (response.status !== 401 || attempt === 2) return response;
      host.log('info', 'the CRM refused the access token; getting a new one');
      token = this.newToken(host, client);
    }
  }

  json(host, method, path, options) {
    const response = this.send(host, method, path, options).raiseForStatus();
    return response.body.length ? response.json() : null;
  }

  // -- the adapter -----------------------------------------------------

  check(host) {
    const found = this.json(host, 'POST', '/crm/v3/objects/contacts/search', { body: { limit: 1 } });
    return `connected to the CRM at ${host.baseUrl}: ${found?.total ?? 0} contacts`;
  }

  search(host, model, filter, cursor, pageSize) {
    const body = {
      limit: Math.max(1, Math.min(pageSize, MAX_SEARCH_LIMIT)),
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
    const after = found?.paging?.next?.after;
    return { items: (found?.results ?? []).map(record), nextCursor: after === undefined || after === null ? null : String(after) };
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
}
