"""The payment voucher's fields as the budget system receives them, built from the request alone (no sandboxes)."""
import datetime as dt

import pytest

from fiscal_disbursement import services
from fiscal_disbursement.models import PaymentLine, PaymentRequest, PayType, Quota
from tests import factories as f
from treasury.access import roles
from treasury.models import Organization

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc


def _request(*, created_at: dt.datetime, approved_at: dt.datetime | None) -> PaymentRequest:
    bureau = f.make_organization(org_type=Organization.Type.FINANCE_BUREAU, name="示范市财政局")
    quota = Quota.objects.create(
        quota_id="ZB-VOUDATE", adm_div_code="320100", fiscal_year=2026, agency_code="101001", agency_name="示范市民政局",
        exp_func_code="2080801", exp_eco_code="30305", fund_type_code="1", pay_type_code=PayType.DIRECT,
        amount_fen=1_000_000_00, synced_at=created_at)
    request = PaymentRequest.objects.create(
        organization=bureau, quota=quota, pay_type=PayType.DIRECT, payer_wallet=f.make_wallet(holder_org=bureau),
        title="高龄津贴", exp_func_code=quota.exp_func_code, exp_eco_code=quota.exp_eco_code, line_count=1,
        total_fen=1000_00, prepared_by=f.make_user(role=roles.FINANCE_CLERK, organization=bureau),
        voucher_no="32010020265201" + "00000001", created_at=created_at, approved_at=approved_at)
    PaymentLine.objects.create(request=request, line_no=2, payee_name="受助人", id_kind="resident",
                               id_number=f.make_resident_id(), wallet_id=f.make_wallet_id(), amount_fen=1000_00)
    return PaymentRequest.objects.get(pk=request.pk)  # as stored: the datetimes come back in UTC


@pytest.mark.parametrize("approved_at, day", [
    # 00:30 on 3 March in Beijing is still 2 March in UTC: the voucher is dated the business day, 3 March.
    (dt.datetime(2026, 3, 2, 16, 30, tzinfo=UTC), dt.date(2026, 3, 3)),
    (dt.datetime(2026, 3, 2, 15, 59, 59, tzinfo=UTC), dt.date(2026, 3, 2)),
    # The last day of the year in UTC is New Year's Day in Beijing.
    (dt.datetime(2026, 12, 31, 18, 0, tzinfo=UTC), dt.date(2027, 1, 1)),
])
def test_the_voucher_date_is_the_asia_shanghai_day_of_the_approval(approved_at, day):
    request = _request(created_at=approved_at - dt.timedelta(hours=1), approved_at=approved_at)

    assert services.build_voucher(request).vou_date == day


def test_a_voucher_not_yet_approved_is_dated_the_asia_shanghai_day_it_was_made():
    request = _request(created_at=dt.datetime(2026, 5, 31, 17, 0, tzinfo=UTC), approved_at=None)

    assert services.build_voucher(request).vou_date == dt.date(2026, 6, 1)
