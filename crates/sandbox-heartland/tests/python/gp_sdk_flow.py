"""Drives the sandbox's GP-API with the official globalpayments-api 2.0.8 SDK (reference §7).

Env: SANDBOX_GPAPI_URL (http://host:port/ucp), SANDBOX_CONTROL_URL (http://host:port/_sandbox).
Prints one JSON line per step; exits non-zero on the first failed expectation.
"""
import json
import os
import sys
import urllib.request
from decimal import Decimal

from globalpayments.api import GpApiConfig, ServicesContainer
from globalpayments.api.builders import TransactionReportBuilder
from globalpayments.api.entities import Transaction
from globalpayments.api.entities.enums import CardChannel, ReportType
from globalpayments.api.entities.exceptions import GatewayException
from globalpayments.api.payment_methods import CreditCardData
from globalpayments.api.services.reporting_service import ReportingService


def step(name, **kw):
    print(json.dumps({"step": name, **kw}, default=str), flush=True)


def expect(cond, msg):
    if not cond:
        step("FAIL", message=msg)
        sys.exit(1)


def control(path, body=None):
    req = urllib.request.Request(
        os.environ["SANDBOX_CONTROL_URL"] + path,
        data=json.dumps(body or {}).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read())


cfg = GpApiConfig()
cfg.app_id = "sandbox-app-id"
cfg.app_key = "sandbox-app-key"
cfg.channel = CardChannel.CARD_NOT_PRESENT
cfg.country = "US"
cfg.service_url = os.environ["SANDBOX_GPAPI_URL"]
ServicesContainer.configure(cfg)


def card(number):
    c = CreditCardData()
    c.number = number
    c.exp_month = 12
    c.exp_year = 2030
    c.cvn = "123"
    c.card_holder_name = "Jane Tester"
    return c


# Authorize 10.00 (binary-exact amounts: the SDK truncates into minor units).
auth = card("4263970000005262").authorize(10).with_currency("USD").execute()
step("authorize", id=auth.transaction_id, status=auth.response_message, code=auth.response_code)
expect(auth.transaction_id.startswith("TRN_"), "authorization has a TRN id")
expect(auth.response_message == "PREAUTHORIZED", "authorize -> PREAUTHORIZED")
expect(auth.response_code == "SUCCESS", "action.result_code SUCCESS")
expect(auth.card_type == "VISA" and auth.card_last4.endswith("5262"), "brand and last4 mapped")
token_info = ServicesContainer.instance().get_client("default").gpApiConfig.access_token_info
expect(token_info.transaction_processing_account_name == "Transaction_Processing", "TRA account name from token scope")
expect((token_info.data_account_id or "").startswith("DAA_"), "DAA account id from token scope")

cap = Transaction.from_id(auth.transaction_id).capture(10).execute()
step("capture", id=cap.transaction_id, status=cap.response_message)
expect(cap.response_message == "CAPTURED", "capture -> CAPTURED")

ref = Transaction.from_id(auth.transaction_id).refund(5).with_currency("USD").execute()
step("refund", id=ref.transaction_id, status=ref.response_message)
expect(ref.response_message == "CAPTURED" and ref.transaction_id != auth.transaction_id, "refund is a new CAPTURED TRN")

try:
    Transaction.from_id(auth.transaction_id).refund(6).with_currency("USD").execute()
    expect(False, "over-refund must fail")
except GatewayException as e:
    step("over_refund", message=str(e), code=e.response_code)
    expect("40087" in str(e.response_code), "over-refund -> 40087")

sale = card("5425230000004415").charge(25.5).with_currency("USD").execute()
step("sale", id=sale.transaction_id, status=sale.response_message, brand=sale.card_type)
expect(sale.response_message == "CAPTURED" and sale.card_type == "MASTERCARD", "sale -> CAPTURED")

dec = card("4000120000001154").charge(10).with_currency("USD").execute()
step("decline", status=dec.response_message, code=dec.response_code, result=dec.card_issuer_response.result)
expect(dec.response_message == "DECLINED" and dec.response_code == "DECLINED", "decline card -> DECLINED")
expect(dec.card_issuer_response.result == "101", "decline result 101")

void = card("374101000000608").authorize(12).with_currency("USD").execute()
rev = Transaction.from_id(void.transaction_id).reverse().execute()
step("reversal", status=rev.response_message)
expect(rev.response_message == "REVERSED", "reversal -> REVERSED")

detail = ReportingService.transaction_detail(sale.transaction_id).execute()
step("detail", id=detail.transaction_id, status=detail.transaction_status, amount=detail.amount)
expect(detail.transaction_id == sale.transaction_id and detail.transaction_status == "CAPTURED", "detail fetch")

closed = control("/batches/close")
step("batch_close", batches=closed)
funded = control("/deposits/fund", {"date": "2025-03-15"})
step("fund", deposits=funded)
expect(len(funded) == 1, "one deposit funded")

rep = TransactionReportBuilder(ReportType.FindSettlementTransactionsPaged).with_paging(1, 10).execute()
step("settlement_transactions", total=rep.total_record_count, ids=[t.transaction_id for t in rep.result])
# settled: the capture, the refund, the sale (decline and reversal never settle)
expect(rep.total_record_count == 3, "three settled transactions")
dep_ids = {t.deposit_reference for t in rep.result}
expect(dep_ids == {funded[0]["id"]}, "settlement transactions carry the deposit id")
expect(all(t.masked_card_number and "XXXXXX" in t.masked_card_number for t in rep.result), "first6last4 masked")

deps = TransactionReportBuilder(ReportType.FindDepositsPaged).with_paging(1, 10).execute()
d = deps.result[0]
step("deposits", total=deps.total_record_count, id=d.deposit_id, amount=d.amount, sales=d.sales_total_amount,
     refunds=d.refunds_total_amount, fees=d.fees_total_amount, status=d.status)
expect(deps.total_record_count == 1 and d.deposit_id == funded[0]["id"], "deposit listed")
expect(d.status == "FUNDED" and d.sales_total_count == 2, "deposit FUNDED with two sales")
expect(d.sales_total_amount == "35.5" and d.refunds_total_amount == "-5.0", "sales 35.50, refunds -5.00")
net_minor = funded[0]["net_amount"]
expect(Decimal(d.amount) * 100 == net_minor, "deposit amount equals sales - refunds - fees - chargebacks")

by_dep = TransactionReportBuilder(ReportType.FindSettlementTransactionsPaged).with_paging(1, 10).with_deposit_id(d.deposit_id).execute()
expect(by_dep.total_record_count == 3, "filter by deposit_id")

step("OK")
