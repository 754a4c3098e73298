// {{name}}: companies of a HubSpot-CRM-v3-shaped API (Junction's reference
// CRM, `demo-crm`) imported into local `company` records.
//
// Start here: add a model to MANIFEST, its API path to OBJECTS and its
// fields to PROPERTIES, then map them in `companyMapper`. The host calls
// `search` page by page with `{ 'updated-since': ... }` after the first
// import, and skips records whose `updatedAt` is older than their last
// sync: return it, or every import re-imports everything.

// The SDK by its path in node_modules, not as '@junction/guest':
// componentize-js resolves relative imports only.
import { Mapping, OAuthClient, Permanent, cursorPage, pageSize } from './node_modules/@junction/guest/src/index.js';

export const MANIFEST = {
  name: '{{name}}',
  version: '0.1.0',
  // The backends this connector serves: their kind and a semver range.
  backendKind: 'crm',
  backendVersions: '>=3.0.0, <4.0.0',
  // Model → operations; the order of models is the import order.
  models: { company: ['search', 'read', 'import'] },
  settingsSchema: { type: 'object' },
  // The OAuth2 client's secret: the host adds the backend's credentials to
  // the token request only, and never shows them to the connector.
  secrets: ['client_secret'],
};

// Local model → the API's object type, and the properties asked for.
const OBJECTS = { company: 'companies' };
const PROPERTIES = { company: ['name', 'domain', 'city', 'country', 'lastmodifieddate'] };
// The largest page the API gives.
const MAX_PAGE = 200;

function objects(model) {
  const o = OBJECTS[model];
  if (o === undefined) throw new Permanent(`model '${model}' is not synced by {{name}}; it knows ${Object.keys(OBJECTS).join(', ')}`);
  return o;
}

function record(obj) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || !('id' in obj)) {
    throw new Permanent(`the CRM answered with something that is not an object: ${JSON.stringify(obj).slice(0, 200)}`);
  }
  return { externalId: String(obj.id), data: obj, updatedAt: obj.updatedAt ?? null };
}

/** The API calls. `transport` is for tests (a scriptedTransport). */
export class CompanyAdapter {
  constructor({ transport = null } = {}) {
    this.transport = transport;
  }

  api(host) {
    return new OAuthClient(host, '/oauth/v1/token', { transport: this.transport });
  }

  check(host, settings) {
    const found = this.api(host).json('POST', '/crm/v3/objects/companies/search', { body: { limit: 1 } });
    return `connected to the CRM at ${host.baseUrl}: ${found?.total ?? 0} companies`;
  }

  search(host, model, filter, cursor, wanted) {
    const body = {
      limit: pageSize(wanted, MAX_PAGE),
      properties: PROPERTIES[model] ?? [],
      sorts: [{ propertyName: 'lastmodifieddate', direction: 'ASCENDING' }],
    };
    if (filter['updated-since']) {
      const since = { propertyName: 'lastmodifieddate', operator: 'GTE', value: filter['updated-since'] };
      body.filterGroups = [{ filters: [since] }];
    }
    if (cursor) body.after = cursor;
    const found = this.api(host).json('POST', `/crm/v3/objects/${objects(model)}/search`, { body });
    return cursorPage(found, record);
  }

  read(host, model, externalId) {
    const query = { properties: (PROPERTIES[model] ?? []).join(',') };
    return record(this.api(host).json('GET', `/crm/v3/objects/${objects(model)}/${externalId}`, { query }));
  }
}

/** Remote record → local fields. */
export const companyMapper = {
  mapImport(host, model, remote) {
    objects(model);
    const m = new Mapping(remote.data).binder(host);
    for (const prop of ['name', 'domain', 'city', 'country']) m.direct(`properties.${prop}`, prop);
    return m.finish();
  },
};
