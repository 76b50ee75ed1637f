"""A person who pays tax (an agreement, a real-time deduction, a batch item, messages with the tax system) is never
shown whole to tax staff: every page, CSV and API answer reachable from the tax pages, the TIPS message log and the
trace, followed link by link, shows their name, resident ID and wallet id masked (treasury.identifiers)."""
from dataclasses import replace

from django.utils import timezone

from adapters.tips import messages as m
from adapters.tips.interface import ResultCode
from adapters.tips.messagelog import record_message
from tax import services
from tax.handlers import TaxHandler
from tests.clients import logged_in
from tests.crawl import crawl
from tests.tax.helpers import batch, item, real_time
from tests.tax.test_refunds import order, refund_item

API_LISTS = ["tax/agreements/", "tax/agreements/csv/", "tax/deductions/", "tax/deductions/csv/", "tax/packages/",
             "tax/refunds/", "tax/reconciliation/runs/", "tax/entry-report/", "tips/messages/", "transfers/"]


def test_tax_staff_never_see_a_taxpayers_name_id_or_wallet_whole(tax, tips_outbox):
    person = tax.taxpayer(personal=True, name="欧阳明远", balance_fen=10_000_00)
    agreement = tax.signed_and_verified(person)
    message = real_time(tax, payer=person, protocol_no=agreement.protocol_no, amount_fen=1_234_56)
    assert services.deduct_real_time(message=message, now=timezone.now()).result == ResultCode.SUCCESS
    package = batch(tax, [item(payer=person, protocol_no=agreement.protocol_no, amount_fen=100_00)])
    assert TaxHandler().receive_batch(package).result == ResultCode.SUCCESS
    assert TaxHandler().receive_refund_order(order([refund_item(person, amount_fen=50_00)])).result == ResultCode.SUCCESS
    # The messages as the tax system sent them, in the log, as the SOAP endpoint records them.
    treasury = replace(message.treasury, pay_bk_code="001000000000")
    for document, msg_no in ((m.real_time_document(message=replace(message, treasury=treasury)), "3001"),
                             (m.batch_document(message=replace(package, treasury=treasury)), "3102")):
        record_message(direction="in", body=document, msg_no=msg_no, msg_id="1" * 20, key="k", signature_valid=True,
                       result="90000", http_status=200)

    pages = crawl(logged_in(tax.staff), ["/", "/tax/", "/tips/messages/", f"/trace/document/{agreement.stream_key}/"]
                  + [f"/api/v1/{path}" for path in API_LISTS])
    bodies = {url: page.body for url, page in pages.items()}

    assert len(bodies) > 40
    reached = " ".join(bodies)
    for page in ("/tax/deductions/", "/tax/refunds/", "/api/v1/tax/refunds/", "/tips/messages/", "/tax/agreements/", "/trace/transfer/", "/api/v1/tax/deductions/"):
        assert page in reached, page  # the crawl got where the person's data is
    shown = " ".join(bodies.values())
    assert person.name[0] + "**" + person.name[-1] in shown  # and found them there, masked
    whole = {"name": person.name, "resident ID": person.taxpayer_id, "wallet id": person.wallet_id}
    leaks = {(what, url) for url, body in bodies.items() for what, value in whole.items() if value in body}
    assert not leaks
