// The CRM connector's mapper in JavaScript: contact properties ↔ local
// customer fields, as the Python connector's mapper does them. Built alone
// as a mapper unit for CRM backends of version 3.1 and later (the registry
// prefers it there over the Python connector's: its version range is the
// narrower one), and as part of the whole JavaScript connector. Pure:
// tested natively with `node --test`.

import { Mapping, Permanent } from '../../guest-sdk/js/src/index.js';

// [contact property, local field]
export const FIELDS = [
  ['email', 'email'],
  ['firstname', 'first_name'],
  ['lastname', 'last_name'],
  ['phone', 'phone'],
  ['city', 'city'],
  ['country', 'country'],
];

export const DEFAULT_LIFECYCLE_STAGE = 'customer';

const SETTINGS_SCHEMA = {
  type: 'object',
  properties: {
    lifecycle_stage: { type: 'string', description: 'lifecyclestage given to contacts created from local customers' },
  },
  additionalProperties: false,
};

/** The mapper unit alone (`mapper.js`): the registry prefers it for CRM 3.1+ over a wider range. */
export const MANIFEST = {
  name: 'crm-js-mapper',
  version: '0.1.0',
  backendKind: 'crm',
  backendVersions: '>=3.1.0, <4.0.0',
  models: { customer: ['import', 'export'] },
  settingsSchema: SETTINGS_SCHEMA,
};

/** The whole connector (`connector.js`): the same backends as the Python one. */
export const CONNECTOR_MANIFEST = {
  name: 'crm-js',
  version: '0.1.0',
  backendKind: 'crm',
  backendVersions: '>=3.0.0, <4.0.0',
  models: { customer: ['search', 'read', 'create', 'write', 'delete', 'import', 'export'] },
  events: ['record-created:customer', 'record-written:customer', 'record-deleted:customer'],
  settingsSchema: SETTINGS_SCHEMA,
  secrets: ['client_secret'],
};

function email(value) {
  if (typeof value !== 'string' || !value.includes('@')) {
    throw new Permanent(`email ${JSON.stringify(value)} is not an email address`);
  }
  return value.trim().toLowerCase();
}

function known(model) {
  if (model !== 'customer') {
    throw new Permanent(`model '${model}' is not synced by this connector; it knows customer`);
  }
}

export const contactMapper = {
  mapImport(host, model, record) {
    known(model);
    const m = new Mapping(record.data);
    for (const [prop, local] of FIELDS) {
      if (prop === 'email') m.convert('properties.email', 'email', email);
      else m.direct(`properties.${prop}`, local);
    }
    return m.finish();
  },

  mapExport(host, model, record, changed) {
    known(model);
    const m = new Mapping(record.data);
    if (changed !== null) m.update(changed);
    for (const [prop, local] of FIELDS) {
      if (local === 'email') m.convert('email', 'email', email);
      else m.direct(local, prop);
    }
    if (m.creating) m.constant('lifecyclestage', host.settings.lifecycle_stage ?? DEFAULT_LIFECYCLE_STAGE);
    const properties = m.finish();
    if (m.creating && !('email' in properties)) {
      throw new Permanent(`customer ${record.id} has no email; a contact needs one`);
    }
    return { properties };
  },
};
