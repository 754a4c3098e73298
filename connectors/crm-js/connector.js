// The component entry of the whole JavaScript CRM connector: componentize-js
// builds this module into a component exporting `describe`, `adapter`,
// `mapper` and `listener`, for a world that adds `wasi:http` to the
// contract's `connector` world.

import '../../guest-sdk/js/src/wasi-http.js';
import { exportUnits } from '../../guest-sdk/js/src/component.js';
import { CrmAdapter } from './adapter.js';
import { customerListener } from './listener.js';
import { CONNECTOR_MANIFEST, contactMapper } from './mapping.js';

export const { describe, adapter, mapper, listener } = exportUnits({
  manifest: CONNECTOR_MANIFEST,
  adapter: new CrmAdapter(),
  mapper: contactMapper,
  listener: customerListener,
});
