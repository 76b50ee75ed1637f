"""A paid refund (退库) takes its money out of the day's treasury entries: one negative entry per paid
refund, split between central and local budgets as the refunded deduction was, entered once when its
transfer settles; the daily entry report nets it, the 3139 entry detail leaves it to the 2104."""
from dataclasses import replace

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tax import entries, selectors, services
from tax.handlers import TaxHandler
from tax.models import RefundOrder, RefundState, TreasuryEntry
from tests.tax.helpers import TAX_ORG_CODE, real_time
from tests.tax.test_refunds import order, refund_item, refunds  # noqa: F401 (the fixture)


def paid_order(tax, items) -> RefundOrder:
    """Received, reviewed by one staff member, approved by another, paid."""
    TaxHandler().receive_refund_order(order(items))
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    return refund_order


def test_a_paid_refund_is_a_negative_entry_split_like_its_deduction(refunds):
    tax = refunds
    # Entries are dated the day they are made (not ENTRUST_DATE, fixed when the tests were collected: a run
    # crossing midnight in Beijing put today's entries on the next day).
    today = timezone.localdate()
    payer = tax.taxpayer(balance_fen=5_000_00)
    agreement = tax.signed_and_verified(payer)
    message = real_time(tax, payer=payer, protocol_no=agreement.protocol_no, amount_fen=1_000_01)  # 增值税 50/50
    assert services.deduct_real_time(message=message, now=timezone.now()).result == "90000"
    vat_refund = replace(refund_item(payer, amount_fen=333_33), ori_tax_vou_no=message.item.tax_vou_no)
    # A voucher we never entered: the budget level decides (1 central).
    other_refund = replace(refund_item(payer, amount_fen=10_00), budget_level_code="1")
    refund_order = paid_order(tax, [vat_refund, other_refund])
    assert set(refund_order.refunds.values_list("state", flat=True)) == {RefundState.PAID}

    vat = TreasuryEntry.objects.get(refund__tra_no=vat_refund.tra_no)
    assert (vat.amount_fen, vat.central_fen, vat.local_fen) == (-333_33, -166_67, -166_66)
    assert (vat.tax_type_name, vat.project_id, vat.entry_date, vat.deduction_id) == ("增值税", "101010", today,
                                                                                     None)
    other = TreasuryEntry.objects.get(refund__tra_no=other_refund.tra_no)
    assert (other.amount_fen, other.central_fen, other.local_fen, other.tax_type_name, other.project_id) == (
        -10_00, -10_00, 0, "", "1010101")

    report = {(r["tax_type_name"], r["budget_level_code"]): (r["amount_fen"], r["central_fen"], r["local_fen"])
              for r in selectors.daily_entry_report(entry_date=today, user=tax.staff)}
    # 1,000.01 entered 500.01 / 500.00; 333.33 refunded 166.67 / 166.66.
    assert report == {("增值税", "3"): (666_68, 333_34, 333_34), ("", "1"): (-10_00, -10_00, 0)}

    # Entered once: finishing the order again adds nothing.
    services.finish_refund_order(order_id=refund_order.pk, now=timezone.now())
    services.finish_refund_orders(now=timezone.now())
    assert TreasuryEntry.objects.filter(refund__isnull=False).count() == 2
    # ... and the database refuses entering a paid refund a second time.
    paid = [(refund, today) for refund in refund_order.refunds.all()]
    with pytest.raises(IntegrityError), transaction.atomic():
        services._record_refund_entries(paid, order=refund_order)
    (detail,) = entries.entry_details(entry_date=today)
    assert (detail.all_num, detail.all_amount_fen) == (1, 1_000_01)


def test_a_refund_the_operator_refused_enters_nothing(refunds):
    tax = refunds
    payer = tax.taxpayer(balance_fen=0)
    TaxHandler().receive_refund_order(order([refund_item(payer, amount_fen=50_00)]))
    refund_order = RefundOrder.objects.get()
    services.review_refund_order(order_id=refund_order.pk, user=tax.staff, now=timezone.now())
    tax.ecny.admin.set_status(wallet_id=payer.wallet_id, status="frozen")
    services.approve_refund_order(order_id=refund_order.pk, user=tax.approver, now=timezone.now())
    assert refund_order.refunds.get().state == RefundState.FAILED
    assert not TreasuryEntry.objects.exists()


@pytest.mark.integration
@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the query plan is PostgreSQL's")
def test_the_refunded_vouchers_deductions_are_found_through_their_index():
    """Finishing a refund order reads the deductions its vouchers name through (tax authority, voucher) (tax
    0013), not every deduction of the authority; for a full order too (1,000 vouchers: over 100, PostgreSQL no
    longer proves by itself that none is empty, as the partial index asks)."""
    vouchers = {f"V{n:012d}" for n in range(services.REFUND_MAX_ITEMS)}
    with transaction.atomic(), connection.cursor() as cursor:
        # A test's few rows are read faster whole: what is asked is whether the index can be used at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = services._tax_types_of_vouchers(tax_org_code=TAX_ORG_CODE, vouchers=vouchers).explain()
    assert "tax_deduction_voucher" in plan
