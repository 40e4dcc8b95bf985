"""Verifies TBA signatures of requests our Rust client actually sent, using oauthlib's own
server-side verification (collect_parameters + verify_hmac_sha256), as NetSuite would.

Input (argv[1]): JSON {"realm", "consumer_key", "consumer_secret", "token", "token_secret",
"requests": [{"method", "uri", "authorization"}]} where `uri` is the absolute URI as received.
Prints one line per request and exits 1 if any fails.
"""
import json
import sys

from oauthlib.common import Request
from oauthlib.oauth1.rfc5849 import signature as sig

spec = json.load(open(sys.argv[1], encoding="utf-8"))
failed = 0
nonces = set()
for r in spec["requests"]:
    problems = []
    # Unescaped header parameters, as an oauthlib endpoint reads them.
    params = dict(sig.collect_parameters(headers={"Authorization": r["authorization"]},
                                         exclude_oauth_signature=False, with_realm=True))
    req = Request(r["uri"], http_method=r["method"], headers={"Authorization": r["authorization"]})
    query = r["uri"].split("?", 1)[1] if "?" in r["uri"] else ""
    req.params = sig.collect_parameters(uri_query=query, headers={"Authorization": r["authorization"]},
                                        exclude_oauth_signature=True, with_realm=False)
    req.signature = params.get("oauth_signature", "")
    if not sig.verify_hmac_sha256(req, spec["consumer_secret"], spec["token_secret"]):
        problems.append("signature does not verify")
    if params.get("realm") != spec["realm"]:
        problems.append("realm %r" % params.get("realm"))
    if params.get("oauth_signature_method") != "HMAC-SHA256":
        problems.append("method %r" % params.get("oauth_signature_method"))
    if params.get("oauth_consumer_key") != spec["consumer_key"] or params.get("oauth_token") != spec["token"]:
        problems.append("consumer key / token mismatch")
    nonce = params.get("oauth_nonce", "")
    if len(nonce) < 32 or nonce in nonces:
        problems.append("nonce too short or reused")
    nonces.add(nonce)
    if not params.get("oauth_timestamp", "").isdigit():
        problems.append("timestamp")
    status = "ok" if not problems else "FAIL " + "; ".join(problems)
    print("%s %s %s" % (status, r["method"], r["uri"]))
    failed += bool(problems)
sys.exit(1 if failed else 0)
