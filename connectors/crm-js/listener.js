// Local customer changes → jobs that export them to the CRM, as the Python
// connector's listener does. Only changes to fields the CRM keeps are
// exported; changes imported from this same backend are not sent back
// (the event names its origin).

import { deleteRemote, exportRecord } from '../../guest-sdk/js/src/index.js';
import { FIELDS } from './mapping.js';

const EXPORTED = new Set(FIELDS.map(([, local]) => local));

export const customerListener = {
  onEvent(host, backend, event) {
    if (event.model !== 'customer' || event.localId === null || event.originBackend === backend) return [];
    if (event.name === 'record-deleted') return [deleteRemote(backend, event.model, event.localId)];
    if (event.name === 'record-created') return [exportRecord(backend, event.model, event.localId)];
    if (event.name === 'record-written') {
      const changed = event.changedFields.filter((f) => EXPORTED.has(f));
      if (changed.length > 0) return [exportRecord(backend, event.model, event.localId, changed)];
    }
    return [];
  },
};
