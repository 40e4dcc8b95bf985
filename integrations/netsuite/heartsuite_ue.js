/**
 * heartsuite user-event script: tells heartsuite, right after a record is saved, that it changed.
 *
 * Sends the signed NetSuite record event of docs/signed-events.md:
 *   POST {endpoint}                        (e.g. https://heartsuite.example.com/hooks/netsuite)
 *   X-Heartsuite-Timestamp: <unix seconds>
 *   X-Heartsuite-Signature: v1=<lowercase hex HMAC-SHA256 of "<timestamp>.<raw body>">
 *
 * Deployed on: salesOrder, itemFulfillment, inventoryItem, customer, inventoryAdjustment.
 * Script parameters (Script record > Parameters):
 *   custscript_hs_endpoint   Free-form text  heartsuite's /hooks/netsuite URL (https)
 *   custscript_hs_secret     Free-form text  script id of the API Secret holding the shared HMAC
 *                                             secret (custsecret_...), or a credential-field GUID
 *   custscript_hs_send_record Checkbox       include a field snapshot in `record` (default off)
 *
 * Why afterSubmit: the record is committed and has its internal id; a failure here can no longer
 * roll back the user's save, so errors are logged, never thrown. Delivery is at-least-once:
 * heartsuite deduplicates on event_id, and the SuiteQL poller (lastmodifieddate cursor) picks up
 * anything this script failed to deliver.
 *
 * @NApiVersion 2.1
 * @NScriptType UserEventScript
 * @NModuleScope SameAccount
 */
define(['N/https', 'N/crypto', 'N/encode', 'N/runtime', 'N/log'], (https, crypto, encode, runtime, log) => {
  // SuiteScript record types are lowercase; heartsuite uses REST record type ids (camelCase).
  const REST_TYPES = {
    salesorder: 'salesOrder',
    itemfulfillment: 'itemFulfillment',
    inventoryitem: 'inventoryItem',
    customer: 'customer',
    inventoryadjustment: 'inventoryAdjustment',
  };

  // Event types worth telling heartsuite about; view/copy/print and friends are not changes.
  const SENT_TYPES = ['create', 'edit', 'xedit', 'delete', 'ship'];

  const ATTEMPTS = 2;

  const param = (name) => runtime.getCurrentScript().getParameter({ name });

  /** Lowercase hex HMAC-SHA256 of `message` keyed with the shared secret. */
  const hmacHex = (message) => {
    const ref = String(param('custscript_hs_secret') || '');
    if (!ref) throw new Error('custscript_hs_secret is not set');
    // API Secrets (Setup > Company > API Secrets) are referenced by script id; older deployments
    // store a credential-field GUID instead.
    const key = ref.indexOf('custsecret') === 0
      ? crypto.createSecretKey({ secret: ref, encoding: encode.Encoding.UTF_8 })
      : crypto.createSecretKey({ guid: ref, encoding: encode.Encoding.UTF_8 });
    const hmac = crypto.createHmac({ algorithm: crypto.HashAlg.SHA256, key });
    hmac.update({ input: message, inputEncoding: encode.Encoding.UTF_8 });
    return hmac.digest({ outputEncoding: encode.Encoding.HEX }).toLowerCase();
  };

  /** A best-effort field snapshot; heartsuite fetches the authoritative REST record by id. */
  const snapshot = (rec) => {
    const out = { id: String(rec.id) };
    rec.getFields().forEach((f) => {
      try {
        const v = rec.getValue({ fieldId: f });
        if (v !== null && v !== undefined && v !== '') out[f] = v;
      } catch (e) {
        // Some fields cannot be read in afterSubmit context; skip them.
      }
    });
    return out;
  };

  const afterSubmit = (context) => {
    const type = String(context.type);
    if (SENT_TYPES.indexOf(type) < 0) return;
    const rec = type === 'delete' ? context.oldRecord : context.newRecord;
    if (!rec) return;
    const recordType = REST_TYPES[String(rec.type).toLowerCase()];
    if (!recordType) return;

    const endpoint = String(param('custscript_hs_endpoint') || '');
    if (endpoint.indexOf('https://') !== 0) {
      log.error({ title: 'heartsuite', details: 'custscript_hs_endpoint must be an https URL' });
      return;
    }

    const occurredAt = new Date().toISOString();
    const id = String(rec.id);
    let externalId = null;
    try {
      externalId = rec.getValue({ fieldId: 'externalid' }) || null;
    } catch (e) {
      externalId = null;
    }
    const sendRecord = type !== 'delete' && param('custscript_hs_send_record') === true;
    const event = {
      // Millisecond precision keeps two saves in the same second distinct.
      event_id: `${recordType}:${id}:${type}:${occurredAt}`,
      type,
      record_type: recordType,
      id,
      external_id: externalId,
      occurred_at: occurredAt,
      record: sendRecord ? snapshot(context.newRecord) : null,
    };
    // Serialise once: the signature covers exactly these bytes.
    const body = JSON.stringify(event);
    const timestamp = String(Math.floor(Date.now() / 1000));
    let signature;
    try {
      signature = 'v1=' + hmacHex(`${timestamp}.${body}`);
    } catch (e) {
      log.error({ title: 'heartsuite: signing failed', details: e.message });
      return;
    }

    for (let attempt = 1; attempt <= ATTEMPTS; attempt += 1) {
      try {
        const resp = https.post({
          url: endpoint,
          body,
          headers: {
            'Content-Type': 'application/json',
            'X-Heartsuite-Timestamp': timestamp,
            'X-Heartsuite-Signature': signature,
          },
        });
        if (resp.code >= 200 && resp.code < 300) return;
        // 4xx will not get better by retrying (bad signature, clock skew): log and stop.
        if (resp.code < 500) {
          log.error({ title: `heartsuite: HTTP ${resp.code}`, details: event.event_id });
          return;
        }
        log.audit({ title: `heartsuite: HTTP ${resp.code}, attempt ${attempt}`, details: event.event_id });
      } catch (e) {
        log.audit({ title: `heartsuite: send failed, attempt ${attempt}`, details: `${event.event_id}: ${e.message}` });
      }
    }
    log.error({ title: 'heartsuite: event not delivered (the poller will catch up)', details: event.event_id });
  };

  return { afterSubmit };
});
