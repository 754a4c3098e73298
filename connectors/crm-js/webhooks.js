// The CRM's webhooks (HubSpot-shaped change lists), as the Python
// connector takes them: a contact created or changed is imported, one
// deleted is deleted locally once the CRM confirms it is gone.

import { Permanent, deleteLocal, importRecord } from '../../guest-sdk/js/src/index.js';

// At most this many changes in one call: each is a job.
export const MAX_CHANGES = 100;

export const contactWebhooks = {
  onWebhook(host, backend, hook) {
    let changes;
    try {
      changes = JSON.parse(hook.body);
    } catch (e) {
      throw new Permanent(`the webhook body is not JSON: ${e.message}`);
    }
    if (!Array.isArray(changes)) throw new Permanent('the webhook body must be a list of changes');
    if (changes.length > MAX_CHANGES) throw new Permanent(`the call lists ${changes.length} changes; at most ${MAX_CHANGES}`);
    const jobs = [];
    for (const change of changes) {
      const kind = typeof change?.subscriptionType === 'string' ? change.subscriptionType : '';
      if (!kind.startsWith('contact.') || change.objectId === undefined) continue;
      const contact = String(change.objectId);
      jobs.push(kind === 'contact.deletion' ? deleteLocal(backend, 'customer', contact, true) : importRecord(backend, 'customer', contact));
    }
    return jobs;
  },
};
