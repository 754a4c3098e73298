// The component entry of the whole JavaScript CRM connector: componentize-js
// builds this module into a component exporting `describe`, `adapter`,
// `mapper`, `listener` and the optional `features`, `lookup`, `webhooks`
// and `tasks`, for the contract's `full-connector-http` world.

import '../../guest-sdk/js/src/wasi-http.js';
import { exportUnits } from '../../guest-sdk/js/src/component.js';
import { features as declareFeatures } from '../../guest-sdk/js/src/units.js';
import { CrmAdapter } from './adapter.js';
import { customerListener } from './listener.js';
import { CONNECTOR_MANIFEST, contactMapper } from './mapping.js';
import { contactWebhooks } from './webhooks.js';

const crm = new CrmAdapter();

// Built for `full-connector-http`: a customer is the same person
// everywhere by email, contacts are found by email before a create and
// listed by id for reconciliation, and the CRM's webhook is taken.
export const FEATURES = declareFeatures({
  matchKeys: [['customer', 'email']],
  find: ['customer'],
  listIds: ['customer'],
  webhooks: ['contacts'],
});

export const { describe, adapter, mapper, listener, features, lookup, webhooks, tasks } = exportUnits({
  manifest: CONNECTOR_MANIFEST,
  adapter: crm,
  mapper: contactMapper,
  listener: customerListener,
  features: FEATURES,
  lookup: crm,
  webhooks: contactWebhooks,
});
