"""The PyPI `netsuite` client (0.12.0), unmodified except for its URL, against the sandbox.

Usage: python netsuite_client.py http://127.0.0.1:PORT
Exits non-zero (with a message) on the first behaviour that differs from what is expected.
"""
import asyncio
import sys

from netsuite import Config, TokenAuth
from netsuite.rest_api import NetSuiteRestApi
from netsuite.exceptions import NetsuiteAPIRequestError

BASE = sys.argv[1].rstrip("/")


class LocalApi(NetSuiteRestApi):
    # The only change the reference (section 8) allows: point the client at the sandbox.
    def _make_url(self, subpath):
        return f"{BASE}/services/rest{subpath}"


def check(cond, msg):
    if not cond:
        print(f"FAIL: {msg}", file=sys.stderr)
        sys.exit(1)


async def main():
    api = LocalApi(
        Config(
            account="1234567_SB1",
            auth=TokenAuth(
                consumer_key="sandbox-consumer-key",
                consumer_secret="sandbox-consumer-secret",
                token_id="sandbox-token-id",
                token_secret="sandbox-token-secret",
            ),
        )
    )

    # Create (POST, 204 + Location), with oauth_body_hash signed by authlib.
    r = await api.request("POST", "/record/v1/customer", json={"companyName": "Py Co", "subsidiary": {"id": "1"}})
    check(r.status_code == 204, f"create status {r.status_code} {r.text}")
    cid = r.headers["Location"].rsplit("/", 1)[1]

    # Read, with a query parameter in the signature.
    cust = await api.get(f"/record/v1/customer/{cid}", params={"expandSubResources": "true"})
    check(cust["id"] == cid and cust["companyName"] == "Py Co", f"get {cust}")
    check(cust["subsidiary"]["refName"] == "Heartsuite Sandbox Inc.", f"refName {cust['subsidiary']}")

    # Upsert by external id: create, then update; the same record both times.
    await api.put("/record/v1/customer/eid:py-ext-1", json={"firstName": "Grace", "lastName": "Hopper", "subsidiary": {"id": "1"}})
    await api.put("/record/v1/customer/eid:py-ext-1", json={"email": "grace@example.com"})
    g = await api.get("/record/v1/customer/eid:py-ext-1")
    check(g["email"] == "grace@example.com" and g["entityId"] == "Grace Hopper", f"upsert {g}")

    # Patch returns None (204).
    check(await api.patch(f"/record/v1/customer/{cid}", json={"phone": "555-0100"}) is None, "patch")

    # A sales order with exact totals, then SuiteQL over it.
    r = await api.request("POST", "/record/v1/inventoryItem", json={"itemId": "PY-SKU", "basePrice": 9.95})
    iid = r.headers["Location"].rsplit("/", 1)[1]
    r = await api.request("POST", "/record/v1/salesOrder", json={
        "entity": {"id": cid}, "externalId": "py-so-1",
        "item": {"items": [{"item": {"id": iid}, "quantity": 3}]},
    })
    check(r.status_code == 204, f"sales order {r.text}")
    so = await api.get("/record/v1/salesOrder/eid:py-so-1")
    check(str(so["total"]) == "29.85", f"total {so['total']}")

    rows = await api.suiteql("SELECT id, companyname FROM customer ORDER BY id", limit=1000, offset=0)
    names = [i.get("companyname") for i in rows["items"]]
    check("Py Co" in names and rows["totalResults"] == 2, f"suiteql customers {rows}")
    rows = await api.suiteql(
        "SELECT t.tranid, BUILTIN.DF(t.entity) AS customer, t.foreigntotal FROM transaction t WHERE t.type = 'SalesOrd'",
        limit=10, offset=0,
    )
    check(rows["items"][0]["customer"] == "Py Co" and rows["items"][0]["foreigntotal"] == "29.85", f"suiteql so {rows}")

    # Errors arrive as NetsuiteAPIRequestError with NetSuite's envelope.
    try:
        await api.get("/record/v1/customer/999999")
        check(False, "missing record did not raise")
    except NetsuiteAPIRequestError as e:
        check(e.status_code == 404 and "NONEXISTENT_ID" in e.response_text, f"404 {e}")

    print("OK netsuite client: create, read, upsert, patch, suiteql, errors")


asyncio.run(main())
