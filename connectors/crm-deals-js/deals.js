// Companies and deals of a HubSpot-CRM-v3-shaped API, imported into local
// `company` and `deal` records (a deal linked to its company through the
// binder): `connectors/crm-deals-python` in JavaScript, so that the imports
// benchmark runs the same work in each language.

import { Mapping, OAuthClient, Permanent, cursorPage, pageSize } from '../../guest-sdk/js/src/index.js';

export const MANIFEST = {
  name: 'crm-deals-js',
  version: '0.1.0',
  backendKind: 'crm',
  backendVersions: '>=3.0.0, <4.0.0',
  // Import order: a deal's company first.
  models: { company: ['search', 'read', 'import'], deal: ['search', 'read', 'import'] },
  settingsSchema: { type: 'object' },
  secrets: ['client_secret'],
};

const OBJECTS = { company: 'companies', deal: 'deals' };
const PROPERTIES = {
  company: ['name', 'domain', 'industry', 'city', 'country', 'lastmodifieddate'],
  deal: ['dealname', 'amount', 'dealstage', 'closedate', 'associatedcompanyid', 'lastmodifieddate'],
};

function objects(model) {
  const o = OBJECTS[model];
  if (o === undefined) throw new Permanent(`model '${model}' is not synced by this connector; it knows company and deal`);
  return o;
}

function record(obj) {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj) || !('id' in obj)) {
    throw new Permanent(`the CRM answered with something that is not an object: ${JSON.stringify(obj).slice(0, 200)}`);
  }
  return { externalId: String(obj.id), data: obj, updatedAt: obj.updatedAt ?? null };
}

export class DealsAdapter {
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
      limit: pageSize(wanted, 200),
      properties: PROPERTIES[model] ?? [],
      sorts: [{ propertyName: 'lastmodifieddate', direction: 'ASCENDING' }],
    };
    if (filter['updated-since']) {
      body.filterGroups = [{ filters: [{ propertyName: 'lastmodifieddate', operator: 'GTE', value: filter['updated-since'] }] }];
    }
    if (cursor) body.after = cursor;
    return cursorPage(this.api(host).json('POST', `/crm/v3/objects/${objects(model)}/search`, { body }), record);
  }

  read(host, model, externalId) {
    const query = { properties: (PROPERTIES[model] ?? []).join(',') };
    return record(this.api(host).json('GET', `/crm/v3/objects/${objects(model)}/${externalId}`, { query }));
  }
}

export const dealsMapper = {
  mapImport(host, model, remote) {
    const m = new Mapping(remote.data).binder(host);
    if (objects(model) === 'companies') {
      for (const p of ['name', 'domain', 'industry', 'city', 'country']) m.direct(`properties.${p}`, p);
    } else {
      m.direct('properties.dealname', 'name').direct('properties.dealstage', 'stage');
      m.convert('properties.amount', 'amount', Number).direct('properties.closedate', 'close_date');
      m.relation('properties.associatedcompanyid', 'company', 'company');
    }
    return m.finish();
  },

  dependencies(host, model, remote) {
    const company = remote.data?.properties?.associatedcompanyid;
    return model === 'deal' && company ? [['company', String(company)]] : [];
  },
};
