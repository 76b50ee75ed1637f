"""An earmark's spend-by date (专款专用, 'until when') holds for the whole of that day in Asia/Shanghai: the
operator enforces the expiry the form writes, and a payment in the day's last second is still in time."""
import datetime as dt

from django.utils import timezone

from adapters.ecny.interface import Conditions, RefusalCode, TransferInstruction
from adapters.ecny.sandbox.ledger import SandboxLedger
from fiscal_disbursement.forms import spend_by

DAY = dt.date(2026, 12, 31)


def refusal(now: dt.datetime):
    conditions = Conditions(expires_at=spend_by(DAY))
    instruction = TransferInstruction(request_id="fiscal:1:2", payer_wallet="2000000000000001",
                                      payee_wallet="2000000000000002", amount_fen=100_00, conditions=conditions)
    return SandboxLedger._condition_refusal(conditions, instruction, ("WT01", 2, "active", 0), now)


def test_a_payment_in_the_last_second_of_the_spend_by_day_is_in_time():
    last_second = dt.datetime.combine(DAY, dt.time(23, 59, 59, 500_000), tzinfo=timezone.get_default_timezone())
    assert refusal(last_second) is None


def test_a_payment_on_the_next_day_is_refused():
    next_day = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 0), tzinfo=timezone.get_default_timezone())
    assert refusal(next_day)[0] == RefusalCode.CONDITION_EXPIRED


def test_the_expiry_is_the_spend_by_day_as_written():
    assert timezone.localtime(spend_by(DAY)).date() == DAY
    assert spend_by(DAY).isoformat()[:10] == "2026-12-31"  # as the voucher PDF prints it
