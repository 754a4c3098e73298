// The component entry: componentize-js builds this module into a
// `mapper-unit` component.

import { exportUnits } from '../../guest-sdk/js/src/component.js';
import { MANIFEST, contactMapper } from './mapping.js';

export const { describe, mapper } = exportUnits({ manifest: MANIFEST, mapper: contactMapper });
