// The component entry: `npm run build` builds this module into
// {{name}}.wasm for the `connector-http` world (adapter, mapper, listener).
// The manifest names no events, so the host never calls the empty listener.

// By path: componentize-js resolves relative imports only.
import './node_modules/@junction/guest/src/wasi-http.js';
import { exportUnits } from './node_modules/@junction/guest/src/component.js';

import { CompanyAdapter, MANIFEST, companyMapper } from './connector.js';

export const { describe, adapter, mapper, listener } = exportUnits({
  manifest: MANIFEST,
  adapter: new CompanyAdapter(),
  mapper: companyMapper,
  listener: { onEvent: () => [] },
});
