"""A recording test double of the tax domain's handler (settings.TIPS_MESSAGE_HANDLER in these tests)."""
from __future__ import annotations

import datetime as dt
import threading

from adapters.tips.interface import (
    Acknowledgement,
    AgreementVerification,
    AgreementVerificationReply,
    BatchDeduction,
    DeductionResult,
    RealTimeDeduction,
    ResultCode,
)

PATH = "tests.adapters.tips.doubles.RecordingHandler"
TAX_DATE = dt.date(2026, 3, 2)


class RecordingHandler:
    """Answers every message and records it in the class-wide `calls` (the live server runs in another thread)."""

    calls: list = []
    lock = threading.Lock()
    refuse_accounts: set[str] = set()  # PayAcct answered with 24007 (insufficient balance)

    @classmethod
    def reset(cls) -> None:
        with cls.lock:
            cls.calls = []
            cls.refuse_accounts = set()

    def _record(self, name, message):
        with self.lock:
            self.calls.append((name, message))

    def verify_agreement(self, message: AgreementVerification) -> AgreementVerificationReply:
        self._record("verify_agreement", message)
        passed = message.protocol_no != "BAD"
        return AgreementVerificationReply(vc_no=message.vc_no, vc_result="0" if passed else "1",
                                          add_word="" if passed else "无此协议 (no such agreement)")

    def deduct_real_time(self, message: RealTimeDeduction) -> DeductionResult:
        self._record("deduct_real_time", message)
        item = message.item
        refused = item.pay_acct in self.refuse_accounts
        return DeductionResult(ori_tax_org_code=message.tax_org_code, ori_entrust_date=message.entrust_date,
                               ori_tra_no=item.tra_no, tax_vou_no=item.tax_vou_no, amount_fen=item.amount_fen,
                               result=ResultCode.INSUFFICIENT_BALANCE if refused else ResultCode.SUCCESS,
                               add_word="余额不足 (insufficient balance)" if refused else "",
                               tax_date=None if refused else TAX_DATE)

    def receive_batch(self, message: BatchDeduction) -> Acknowledgement:
        self._record("receive_batch", message)
        return Acknowledgement(ori_msg_id=message.head.msg_id, result=ResultCode.SUCCESS)
