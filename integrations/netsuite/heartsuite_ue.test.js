// Runs heartsuite_ue.js under stub N/* modules (node, no dependencies):
//   node integrations/netsuite/heartsuite_ue.test.js
// Checks the event shape and that X-Heartsuite-Signature verifies as docs/signed-events.md says.
'use strict';
const assert = require('assert');
const nodeCrypto = require('crypto');
const fs = require('fs');
const path = require('path');

const SECRET = 'shh-shared-secret';
const posts = [];
let nextCode = 200;
const params = {
  custscript_hs_endpoint: 'https://heartsuite.example.test/hooks/netsuite',
  custscript_hs_secret: 'custsecret_heartsuite_hook',
  custscript_hs_send_record: false,
};
const stubs = {
  'N/https': { post: (o) => { posts.push(o); return { code: nextCode }; } },
  'N/encode': { Encoding: { UTF_8: 'UTF_8', HEX: 'HEX' } },
  'N/runtime': { getCurrentScript: () => ({ getParameter: ({ name }) => params[name] }) },
  'N/log': { error: () => {}, audit: () => {} },
  'N/crypto': {
    HashAlg: { SHA256: 'SHA256' },
    createSecretKey: (o) => {
      assert.strictEqual(o.secret, 'custsecret_heartsuite_hook');
      return { value: SECRET };
    },
    createHmac: ({ algorithm, key }) => {
      assert.strictEqual(algorithm, 'SHA256');
      const h = nodeCrypto.createHmac('sha256', key.value);
      return {
        update: ({ input }) => h.update(input, 'utf8'),
        // NetSuite may return uppercase hex; the script lowercases it.
        digest: () => h.digest('hex').toUpperCase(),
      };
    },
  },
};
let mod;
global.define = (deps, factory) => { mod = factory(...deps.map((d) => stubs[d])); };
eval(fs.readFileSync(path.join(__dirname, 'heartsuite_ue.js'), 'utf8'));

const rec = (type, id, fields) => ({
  type, id,
  getValue: ({ fieldId }) => fields[fieldId],
  getFields: () => Object.keys(fields),
});

// create on a sales order
mod.afterSubmit({ type: 'create', newRecord: rec('salesorder', 123, { externalid: 'hs-order-abc', memo: 'm' }) });
assert.strictEqual(posts.length, 1);
let p = posts[0];
assert.strictEqual(p.url, params.custscript_hs_endpoint);
const ts = p.headers['X-Heartsuite-Timestamp'];
assert.ok(/^\d+$/.test(ts) && Math.abs(Number(ts) - Date.now() / 1000) < 5);
const want = 'v1=' + nodeCrypto.createHmac('sha256', SECRET).update(`${ts}.${p.body}`).digest('hex');
assert.strictEqual(p.headers['X-Heartsuite-Signature'], want);
let ev = JSON.parse(p.body);
assert.strictEqual(ev.type, 'create');
assert.strictEqual(ev.record_type, 'salesOrder');
assert.strictEqual(ev.id, '123');
assert.strictEqual(ev.external_id, 'hs-order-abc');
assert.strictEqual(ev.record, null);
assert.ok(ev.event_id.startsWith('salesOrder:123:create:'));
assert.ok(ev.event_id.endsWith(ev.occurred_at));

// delete uses oldRecord and never sends a record body
mod.afterSubmit({ type: 'delete', oldRecord: rec('itemfulfillment', 9, {}) });
ev = JSON.parse(posts[1].body);
assert.deepStrictEqual([ev.type, ev.record_type, ev.id, ev.external_id, ev.record], ['delete', 'itemFulfillment', '9', null, null]);

// snapshot when asked; unrelated types and event types are ignored
params.custscript_hs_send_record = true;
mod.afterSubmit({ type: 'edit', newRecord: rec('customer', 5, { companyname: 'Acme', email: '' }) });
ev = JSON.parse(posts[2].body);
assert.deepStrictEqual(ev.record, { id: '5', companyname: 'Acme' });
mod.afterSubmit({ type: 'view', newRecord: rec('customer', 5, {}) });
mod.afterSubmit({ type: 'create', newRecord: rec('vendor', 5, {}) });
assert.strictEqual(posts.length, 3);

// 5xx is retried once, 4xx is not
nextCode = 503;
mod.afterSubmit({ type: 'edit', newRecord: rec('inventoryitem', 1, {}) });
assert.strictEqual(posts.length, 5);
nextCode = 401;
mod.afterSubmit({ type: 'edit', newRecord: rec('inventoryadjustment', 1, {}) });
assert.strictEqual(posts.length, 6);
console.log('heartsuite_ue.js: all checks passed');
