"""The refund order's page links each paid refund's receipt (issued by the transfer core when the refund's
transfer settles); an item not paid has none."""
from django.urls import reverse
from django.utils import timezone

from tax import services
from tax.handlers import TaxHandler
from tax.models import RefundOrder, RefundState
from tests.tax.test_pages_api import logged_in
from tests.tax.test_refunds import order, refund_item, refunds  # noqa: F401 (the fixture)


def test_the_refund_page_links_the_receipts_issued(refunds):
    tax = refunds
    paid_payer, frozen_payer = tax.taxpayer(balance_fen=0), tax.taxpayer(balance_fen=0)
    TaxHandler().receive_refund_order(order([refund_item(paid_payer, amount_fen=12_00),
                                             refund_item(frozen_payer, amount_fen=13_00)]))
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    tax.ecny.admin.set_status(wallet_id=frozen_payer.wallet_id, status="frozen")
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    paid = refund_order.refunds.get(state=RefundState.PAID)
    assert refund_order.refunds.get(payee_acct=frozen_payer.wallet_id).state == RefundState.FAILED
    number = paid.transfer.receipt.number

    html = logged_in(tax.staff).get(reverse("tax:refund-detail", args=[refund_order.pk])).content.decode()
    assert html.count('data-testid="receipt-link"') == 1
    assert f'href="{reverse("receipts:download", args=[number])}"' in html
    download = logged_in(tax.staff).get(reverse("receipts:download", args=[number]))
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
