"""A request signed by oauthlib (HMAC-SHA256, realm = account) must be accepted by the sandbox,
and the same request with a tampered signature refused.

Usage: python oauthlib_sign.py http://127.0.0.1:PORT
"""
import json
import sys
import urllib.error
import urllib.request

from oauthlib import oauth1

BASE = sys.argv[1].rstrip("/")

client = oauth1.Client(
    "sandbox-consumer-key",
    client_secret="sandbox-consumer-secret",
    resource_owner_key="sandbox-token-id",
    resource_owner_secret="sandbox-token-secret",
    signature_method=oauth1.SIGNATURE_HMAC_SHA256,
    realm="1234567_SB1",
)


def send(method, url, headers, body=None):
    req = urllib.request.Request(url, method=method, headers=headers, data=body)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


url = f"{BASE}/services/rest/record/v1/account?limit=5&q=acctType%20IS%20%22Bank%22"
uri, headers, _ = client.sign(url, http_method="GET")
status, body = send("GET", uri, headers)
if status != 200:
    print(f"FAIL: oauthlib-signed GET got {status}: {body!r}", file=sys.stderr)
    sys.exit(1)
data = json.loads(body)
if data["totalResults"] != 1:
    print(f"FAIL: filter result {data}", file=sys.stderr)
    sys.exit(1)

uri, headers, _ = client.sign(url, http_method="GET")
headers["Authorization"] = headers["Authorization"].replace('oauth_signature="', 'oauth_signature="x')
status, body = send("GET", uri, headers)
if status != 401 or b"INVALID_LOGIN" not in body:
    print(f"FAIL: tampered signature got {status}: {body!r}", file=sys.stderr)
    sys.exit(1)
print("OK oauthlib signature accepted, tampered refused")
