// The component entry: componentize-js builds this module into a
// component for the `connector-http` world. The manifest names no events,
// so the host never calls the empty listener.

import '../../guest-sdk/js/src/wasi-http.js';
import { exportUnits } from '../../guest-sdk/js/src/component.js';
import { DealsAdapter, MANIFEST, dealsMapper } from './deals.js';

export const { describe, adapter, mapper, listener } = exportUnits({
  manifest: MANIFEST,
  adapter: new DealsAdapter(),
  mapper: dealsMapper,
  listener: { onEvent: () => [] },
});
