"""Reversals (冲正, 1021 -> 2021) and stop payments (止付, 1123 -> 2123) the tax system asks for.

Reversal: the tax system names a deduction by (TaxOrgCode, OriEntrustDate, OriTraNo). A deduction that
settled has its money returned through the transfer core (`reverse_transfer`: the operator reverses the
debit and the core posts the reversal; no ledger row is touched) and becomes `reversed`; its treasury
entries get their negatives on the reversal's day. A deduction that failed or was reversed already is
answered "reversed" at once (nothing is with the treasury). A deduction still undecided (received,
deducting, or `unknown` after a 94999) is answered 94999 "send again" and nothing is kept: only the
operator's answer, asked by the transfer core's recovery, decides an unknown debit, and
`services.resolve_unknown_deductions` then reverses a real-time one that settled by itself; the tax
system's next 1021 finds it reversed. Final answers are kept (`TaxReversal`), so the same request gets
the same answer.

Stop payment: under the package's lock (the lock `services.process_package` takes per chunk), items of
the package (or the one item named) still `received` are decided 24020 and never debited; items already
deducting or decided are counted as done and reported in the 2102 as they are. The batch-deduction
functions are not changed: they only ever debit items still `received`.
"""
from __future__ import annotations

from datetime import datetime
from functools import partial

from django.db import IntegrityError, transaction

from adapters.tips.interface import (
    ResultCode,
    Reversal,
    ReversalReply,
    StopPayment,
    StopPaymentReply,
)
from treasury.errors import TransferNotReversible
from treasury.services import transfers as transfer_services
from treasury.services.transfers import OperatorUnavailable

from . import services
from .reconciliation.corrections import refunded_by_corrections
from .models import DeductionKind, DeductionPackage, StopPaymentRequest, TaxDeduction, TaxReversal, TreasuryEntry
from .models import DeductionState as D
from .models import PackageState as P

REVERSED, NOT_REVERSED = "0", "1"
UNDECIDED = (D.RECEIVED, D.DEDUCTING, D.UNKNOWN)


def _reply(row: TaxReversal) -> ReversalReply:
    return ReversalReply(cancel_answer=row.cancel_answer, result=row.result_code, add_word=row.add_word)


def reverse_deduction(*, message: Reversal, now: datetime) -> ReversalReply:
    """1021 -> 2021. Idempotent on (TaxOrgCode, EntrustDate, CancelNo): a request answered before gets the
    same answer (94051 when that CancelNo reversed another deduction). The operator is called with no lock
    or transaction held; a timeout there is answered 94999 and the next request asks again (the reversal's
    idempotency key makes it one reversal)."""
    key = dict(tax_org_code=message.tax_org_code, entrust_date=message.entrust_date, cancel_no=message.cancel_no)
    existing = TaxReversal.objects.filter(**key).first()
    if existing is not None:
        return _repeat(existing, message)
    deduction = TaxDeduction.objects.filter(tax_org_code=message.tax_org_code, entrust_date=message.ori_entrust_date,
                                            tra_no=message.ori_tra_no).select_related("package").first()

    def keep(answer: str, code: str, note: str) -> ReversalReply:
        return _keep(message, key, deduction, answer, code, note, now=now)

    if deduction is None:
        return keep(NOT_REVERSED, ResultCode.ORIGINAL_NOT_FOUND, "原扣税交易不存在 (no such deduction)")
    if deduction.kind == DeductionKind.OWN:
        return keep(NOT_REVERSED, ResultCode.OTHER_FAILURE,
                    "自行缴税不经税务系统冲正 (an own payment is not reversed by the tax system)")
    if deduction.state in UNDECIDED or (deduction.package_id and deduction.package.state != P.DONE):
        return ReversalReply(cancel_answer=NOT_REVERSED, result=ResultCode.TIMEOUT,
                             add_word="原交易尚未处理完毕，请稍后重发冲正 (the deduction is not decided yet; send again)")
    if deduction.state == D.FAILED:
        return keep(REVERSED, ResultCode.SUCCESS, "原交易未扣款，无需冲正 (nothing was debited)")
    if deduction.state == D.REVERSED:
        return keep(REVERSED, ResultCode.SUCCESS, "原交易已冲正 (already reversed)")
    with transaction.atomic():
        # Under the deduction's lock, which a correction's approval takes too: either a refund was approved first
        # (reversing the whole debit would pay that part back twice) or the approval sees this reversal asked.
        locked = services._locked_deduction(deduction.pk)
        if refunded_by_corrections(locked):
            return keep(NOT_REVERSED, ResultCode.OTHER_FAILURE,
                        "已由对账更正退还部分或全部款项，不能整笔冲正 (a reconciliation correction already refunded money "
                        "of this deduction: it cannot be reversed whole)")
        if locked.reversal_asked_at is None:
            locked.reversal_asked_at = now
            locked.save(update_fields=["reversal_asked_at"])
    try:
        transfer_services.reverse_transfer(
            transfer_id=deduction.transfer_id, actor="tips", now=now,
            reason=f"税务系统冲正 {message.cancel_no} (reversal asked by the tax system)"[:200])
    except OperatorUnavailable as exc:
        return ReversalReply(cancel_answer=NOT_REVERSED, result=ResultCode.TIMEOUT,
                             add_word=f"运营机构暂不可达，请重发 (operator unreachable, send again): {exc}"[:255])
    except TransferNotReversible as exc:  # refused: the debit stays with the treasury (a timeout above may not)
        TaxDeduction.objects.filter(pk=deduction.pk, state=D.SUCCEEDED).update(reversal_asked_at=None)
        return keep(NOT_REVERSED, ResultCode.OTHER_FAILURE, f"冲正被拒绝 (the reversal was refused): {exc}")
    with transaction.atomic():
        locked = services._locked_deduction(deduction.pk)
        if locked.state == D.SUCCEEDED:
            locked.cancel()
            locked.add_word = f"已冲正 {message.cancel_no} (reversed at the tax system's request)"[:255]
            locked.save()
            _reverse_entries(locked, now=now)
            services._trace(locked.stream_key, services.DEDUCTION, locked.pk, "tax.deduction.reversed", actor="tips",
                            now=now, amount_fen=locked.amount_fen, source_ref=locked.tra_no,
                            data={"cancel_no": message.cancel_no, "reason": message.cancel_reason,
                                  "transfer": locked.transfer_id})
        return keep(REVERSED, ResultCode.SUCCESS,
                    "已冲正，款项已退回纳税人钱包 (reversed: the money went back to the taxpayer's wallet)")


def _repeat(existing: TaxReversal, message: Reversal) -> ReversalReply:
    if (existing.ori_entrust_date, existing.ori_tra_no) != (message.ori_entrust_date, message.ori_tra_no):
        return ReversalReply(cancel_answer=NOT_REVERSED, result=ResultCode.DUPLICATE,
                             add_word="冲正流水号已用于另一笔交易 (CancelNo used for another deduction)")
    return _reply(existing)


def _keep(message: Reversal, key: dict, deduction, answer: str, code: str, note: str, *, now: datetime) -> ReversalReply:
    try:
        with transaction.atomic():
            row = TaxReversal.objects.create(
                ori_entrust_date=message.ori_entrust_date, ori_tra_no=message.ori_tra_no,
                cancel_reason=message.cancel_reason[:200], msg_id=message.head.msg_id, deduction=deduction,
                cancel_answer=answer, result_code=code, add_word=note[:255], received_at=now, **key)
    except IntegrityError:  # the same request at the same time: the first one's answer stands
        return _repeat(TaxReversal.objects.get(**key), message)
    return _reply(row)


def _reverse_entries(deduction: TaxDeduction, *, now: datetime) -> None:
    """The negatives of a deduction's treasury entries, on the reversal's day (the entries stay)."""
    day = services.local_date(now)
    TreasuryEntry.objects.bulk_create([
        TreasuryEntry(deduction=deduction, entry_date=day, treasury_code=e.treasury_code, tax_org_code=e.tax_org_code,
                      project_id=e.project_id, tax_type_name=e.tax_type_name, budget_type=e.budget_type,
                      budget_level_code=e.budget_level_code, amount_fen=-e.amount_fen, central_fen=-e.central_fen,
                      local_fen=-e.local_fen, reverses=True)
        for e in TreasuryEntry.objects.filter(deduction=deduction, reverses=False)])


# ---------------------------------------------------------------------------------------------
# Stop payment (1123 -> 2123)
# ---------------------------------------------------------------------------------------------

def _stop_reply(row: StopPaymentRequest) -> StopPaymentReply:
    return StopPaymentReply(stop_num=row.stop_num, stop_amount_fen=row.stop_amount_fen, done_num=row.done_num,
                            result=row.result_code, add_word=row.add_word)


def stop_payment(*, message: StopPayment, now: datetime) -> StopPaymentReply:
    """1123 -> 2123. Idempotent on (TaxOrgCode, EntrustDate, StopNo). Result 90000 when something was
    stopped; 24020 when everything named was stopped before; 24008 when everything named is already
    deducted or decided; E0004 for a package or item we never received."""
    key = dict(tax_org_code=message.tax_org_code, entrust_date=message.entrust_date, stop_no=message.stop_no)
    existing = StopPaymentRequest.objects.filter(**key).first()
    if existing is not None:
        return _stop_reply(existing)
    stopped, done, previously_stopped = [], 0, 0
    try:
        with transaction.atomic():
            package_key = dict(tax_org_code=message.tax_org_code, entrust_date=message.ori_entrust_date,
                               pack_no=message.ori_pack_no)
            services.lock_package_number(**package_key)  # a package being stored meanwhile is found
            package = DeductionPackage.objects.filter(**package_key).first()
            if package is None:
                code, note = ResultCode.ORIGINAL_NOT_FOUND, "原批量包不存在 (no such package)"
            else:
                package = services._locked_package(package.pk)  # no chunk is being deducted meanwhile
                items = TaxDeduction.objects.select_for_update(of=("self",)).filter(package=package).order_by("pk")
                if message.ori_tra_no:
                    items = items.filter(tra_no=message.ori_tra_no)
                items = list(items)
                for d in items:
                    if d.state == D.RECEIVED:
                        d.refuse()
                        d.result_code, d.add_word, d.decided_at = ResultCode.ALREADY_STOPPED, services.STOP_NOTE, now
                        stopped.append(d)
                    elif d.result_code == ResultCode.ALREADY_STOPPED:
                        previously_stopped += 1
                    else:
                        done += 1
                TaxDeduction.objects.bulk_update(stopped, ["state", "result_code", "add_word", "decided_at"])
                code, note = _stop_outcome(items, stopped, previously_stopped, message)
                if stopped:
                    services._trace(package.stream_key, services.PACKAGE, package.pk, "tax.package.stopped",
                                    actor="tips", now=now, amount_fen=sum(d.amount_fen for d in stopped),
                                    data={"stop_no": message.stop_no, "reason": message.stop_reason,
                                          "stopped": len(stopped), "items": [d.tra_no for d in stopped][:100]})
                if stopped and package.state == P.DEDUCTING:  # the package may now be complete
                    transaction.on_commit(partial(services.finish_package, package_id=package.pk, now=now))
            row = StopPaymentRequest.objects.create(
                ori_entrust_date=message.ori_entrust_date, ori_pack_no=message.ori_pack_no,
                ori_tra_no=message.ori_tra_no, stop_reason=message.stop_reason[:200], msg_id=message.head.msg_id,
                package=package, stop_num=len(stopped), stop_amount_fen=sum(d.amount_fen for d in stopped),
                done_num=done + previously_stopped, result_code=code, add_word=note[:255], received_at=now, **key)
    except IntegrityError:  # the same request at the same time: nothing of this one was kept
        return _stop_reply(StopPaymentRequest.objects.get(**key))
    return _stop_reply(row)


def _stop_outcome(items, stopped, previously_stopped: int, message: StopPayment) -> tuple[str, str]:
    if not items:
        return ResultCode.ORIGINAL_NOT_FOUND, f"包内无此交易 {message.ori_tra_no} (no such item in the package)"
    if stopped:
        return ResultCode.SUCCESS, (f"止付{len(stopped)}笔，已处理{len(items) - len(stopped)}笔"
                                    f" (stopped {len(stopped)}, already decided {len(items) - len(stopped)})")
    if previously_stopped == len(items):
        return ResultCode.ALREADY_STOPPED, "已止付 (already stopped)"
    return ResultCode.OTHER_FAILURE, "已扣款或已处理，无法止付 (already deducted or decided; nothing stopped)"
