"""Daily three-way reconciliation (对账) of tax deductions.

Three sources for one check date, matched on the serial key (tax org code, entrust date, TraNo):

- the tax system's check records (3111 BankCompare lines, `CheckRecord`, arriving in `CheckPackage`s:
  a day may come as several packages, ChildPackNum / CurPackNo; a run waits until all have arrived);
- our records: `tax.TaxDeduction` (state, amount) and its `tax.TreasuryEntry` rows;
- the operator's statement of the treasury wallet for the day (`StatementLine`, fetched per run).

A run writes one `ReconciliationResult` per serial that is not matched (a matched serial is only
counted, in the run's `ReconciliationTotal`s per tax authority and outcome) with an `Outcome`. Every outcome
other than the consistent ones (matched, own payment matched, both failed, a reversal of an earlier day) opens
a `DiscrepancyCase` (open -> investigating -> resolved with a reason).
Re-running a date replaces the run's results and statement lines; cases and their history stay.
Records are never edited to make them agree: a correction is a transfer made through the treasury,
linked from the case.
"""
import datetime as dt
from typing import NamedTuple

from django.conf import settings
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


class RunState(models.TextChoices):
    WAITING = "waiting", "等待对账明细 (waiting for check packages)"
    DONE = "done", "已完成 (done)"


class RunStep(models.TextChoices):
    """Where a run being worked on is (empty when none is): the progress its page shows. A step is committed
    before its work starts, so another connection sees it; matching and opening cases are one transaction."""

    IDLE = "", "—"
    QUEUED = "queued", "已排队 (queued)"
    FETCHING = "fetching", "获取运营机构对账单 (fetching the operator's statement)"
    MATCHING = "matching", "核对并立案 (matching and opening cases)"


# A step older than this is taken as stalled (its worker died and the task was not delivered again yet): asking
# for the run again queues it anew. Matching a million records a side takes seconds, not minutes.
STALLED_AFTER = dt.timedelta(minutes=15)


class ReconciliationRun(models.Model):
    """One reconciliation of a check date; `tax_org_code` empty means every tax authority."""

    check_date = models.DateField("对账日期 (check date)")
    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12, blank=True)
    state = models.CharField("状态 (state)", max_length=16, choices=RunState.choices, default=RunState.WAITING)
    # {outcome: {"count": n, "tax_fen": .., "ours_fen": .., "operator_fen": ..}}
    totals = models.JSONField("分类汇总 (totals per outcome)", default=dict)
    matched_count = models.PositiveIntegerField("相符笔数 (matched)", default=0)
    discrepancy_count = models.PositiveIntegerField("差异笔数 (discrepancies)", default=0)
    tax_amount_fen = models.BigIntegerField("税务方金额 (tax system total, fen)", default=0)
    ours_amount_fen = models.BigIntegerField("本方金额 (our total, fen)", default=0)
    operator_amount_fen = models.BigIntegerField("运营机构金额 (operator total, fen)", default=0)
    runs = models.PositiveIntegerField("执行次数 (times run)", default=0)
    note = models.CharField("说明 (note)", max_length=255, blank=True)
    reply_result = models.CharField("2111 结果 (reply result)", max_length=1, blank=True)
    reply_sent_at = models.DateTimeField(null=True, blank=True)
    # The 2111 the tax system last acknowledged (Result and AddWord): a re-run whose answer differs sends again.
    reply_sent_text = models.CharField("已确认的2111 (2111 acknowledged)", max_length=255, blank=True)
    # The tax system refused a 2111 (a fault or a refusing result): the run waits for a person (who runs the day
    # again), not for the periodic resend, as a refused 2102 or 2104 does.
    reply_fault_code = models.CharField("2111 拒收代码 (refusal code)", max_length=10, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Progress of the work under way, by wall-clock time (a person watches it), and who last asked for it.
    step = models.CharField("进度 (step)", max_length=16, choices=RunStep.choices, blank=True)
    step_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.CharField("请求人 (requested by)", max_length=150, blank=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    # Why the last attempt stopped before matching (the operator's statement could not be fetched); the results
    # of the run before it stay. Cleared when a run finishes.
    failure = models.CharField("上次失败 (last failure)", max_length=255, blank=True)

    class Meta:
        verbose_name = "对账批次 (reconciliation run)"
        ordering = ["-check_date", "tax_org_code"]
        constraints = [models.UniqueConstraint(fields=["check_date", "tax_org_code"], name="tax_recon_run_unique")]

    def __str__(self) -> str:
        return f"{self.check_date:%Y%m%d}/{self.tax_org_code or '*'} {self.state}"

    def in_progress(self, now: dt.datetime) -> bool:
        """Work on the run is queued or under way, and not stalled."""
        return bool(self.step) and self.step_at is not None and now - self.step_at < STALLED_AFTER


class CheckPackage(models.Model):
    """3111 BatchHead: one package of the tax system's check detail for a day."""

    pay_bk_code = models.CharField("付款行行号 (our bank code)", max_length=12)
    check_date = models.DateField("对账日期 (check date)")
    chk_acct_ord = models.CharField("对账批次 (check order)", max_length=4)
    payee_bank_no = models.CharField("收款行行号 (payee bank)", max_length=12, blank=True)
    chk_acct_type = models.CharField("对账类型 (0 intraday, else end of day)", max_length=1, default="1")
    all_num = models.PositiveIntegerField("总笔数 (count)")
    all_amount_fen = models.BigIntegerField("总金额 (total, fen)")
    child_pack_num = models.PositiveIntegerField("子包总数 (packages)")
    cur_pack_no = models.PositiveIntegerField("本包序号 (package number)")
    msg_id = models.CharField("报文标识号 (message id)", max_length=20, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        verbose_name = "对账明细包 (check package, 3111)"
        # Each treasury (payee bank) sends its own check of the day, numbered on its own.
        constraints = [models.UniqueConstraint(fields=["check_date", "payee_bank_no", "chk_acct_ord", "cur_pack_no"],
                                               name="tax_recon_package_unique")]


class CheckRecord(models.Model):
    """3111 BankCompare: one record the tax system holds as paid on the check date."""

    package = models.ForeignKey(CheckPackage, on_delete=models.CASCADE, related_name="records")
    check_date = models.DateField("对账日期 (check date)")
    pay_op_bk_code = models.CharField("开户行行号 (operator bank code)", max_length=12, blank=True)
    pay_acct = models.CharField("缴款账户 (payer wallet)", max_length=32, blank=True)
    tax_org_code = models.CharField("原征收机关代码 (OriTaxOrgCode)", max_length=12)
    entrust_date = models.DateField("原委托日期 (OriEntrustDate)")
    pack_no = models.CharField("原包流水号 (OriPackNo)", max_length=20, blank=True)
    tra_no = models.CharField("原交易流水号 (OriTraNo)", max_length=24)
    amount_fen = models.BigIntegerField("金额 (TraAmt, fen)")
    tax_vou_no = models.CharField("税票号码 (TaxVouNo)", max_length=30, blank=True)
    tax_pay_name = models.CharField("纳税人名称 (TaxPayName)", max_length=200, blank=True)
    protocol_no = models.CharField("协议书号 (ProtocolNo)", max_length=60, blank=True)

    class Meta:
        verbose_name = "税务对账明细 (check record)"
        indexes = [models.Index(fields=["check_date", "tax_org_code"]),
                   models.Index(fields=["tax_org_code", "entrust_date", "tra_no"])]


class StatementLine(models.Model):
    """A line of the operator's statement of the treasury wallet for the run's day."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="statement_lines")
    wallet_id = models.CharField("钱包 (wallet)", max_length=32)
    operator_txn_id = models.CharField("运营机构流水 (operator transaction)", max_length=64)
    request_id = models.CharField("请求幂等键 (request id)", max_length=128)
    booked_at = models.DateTimeField()
    direction = models.CharField(max_length=6)
    kind = models.CharField(max_length=16)
    amount_fen = models.BigIntegerField()
    # The serial key read from a tax request id (tax:<org>:<YYYYMMDD>:<TraNo>); empty for other lines.
    tax_org_code = models.CharField(max_length=12, blank=True)
    entrust_date = models.DateField(null=True, blank=True)
    tra_no = models.CharField(max_length=24, blank=True)

    class Meta:
        verbose_name = "运营机构对账单 (operator statement line)"
        indexes = [models.Index(fields=["run", "tax_org_code", "entrust_date", "tra_no"])]


class Outcome(models.TextChoices):
    MATCHED = "matched", "相符 (matched)"
    # An own payment (自行缴税) is not in the tax system's check (3111 lists agreement debits): matched with the
    # operator and our entries only, and counted apart from the three-way matches.
    OWN_MATCHED = "own_matched", "自行缴税与运营机构相符 (own payment, matched with the operator)"
    BOTH_FAILED = "both_failed", "双方均失败 (both failed)"
    # A deduction of an earlier day reversed (冲正) on the run's day: the day's operator debit and our negative
    # entries agree, and the tax system (which asked for it, or was told 94999) does not list it that day.
    REVERSED = "reversed", "冲正与运营机构相符 (reversal of an earlier day, matched with the operator)"
    AMOUNT_MISMATCH = "amount_mismatch", "金额不符 (amount mismatch)"
    MISSING_OURS = "missing_ours", "本方无记录 (missing in ours)"
    OURS_FAILED = "ours_failed", "税务成功本方失败 (tax system paid, ours failed)"
    OURS_UNDECIDED = "ours_undecided", "本方结果未明 (ours not decided)"
    MISSING_TAX = "missing_tax", "税务方无记录 (missing at the tax system)"
    MISSING_OPERATOR = "missing_operator", "运营机构无记录 (missing in the operator statement)"
    DUPLICATE_TAX = "duplicate_tax", "税务方重复 (duplicate at the tax system)"
    DUPLICATE_OPERATOR = "duplicate_operator", "运营机构重复 (duplicate in the operator statement)"


CONSISTENT_OUTCOMES = (Outcome.MATCHED, Outcome.OWN_MATCHED, Outcome.BOTH_FAILED, Outcome.REVERSED)
DISCREPANCY_OUTCOMES = tuple(o for o in Outcome if o not in CONSISTENT_OUTCOMES)


class ReconciliationResult(models.Model):
    """One serial of a run that is not matched and how the three sources disagree on it (or both failed);
    written by the engine in bulk. Matched serials are counted in `ReconciliationTotal` only."""

    # Few indexes: a run writes up to millions of these at once (the unique key serves lookups by run).
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="results", db_index=False)
    tax_org_code = models.CharField(max_length=12)
    entrust_date = models.DateField()
    tra_no = models.CharField(max_length=24)
    outcome = models.CharField("结果 (outcome)", max_length=20, choices=Outcome.choices)
    tax_count = models.PositiveIntegerField(default=0)
    tax_amount_fen = models.BigIntegerField(null=True)
    ours_state = models.CharField(max_length=16, blank=True)
    ours_amount_fen = models.BigIntegerField(null=True)
    entered_amount_fen = models.BigIntegerField(null=True)  # sum of the deduction's treasury entries
    operator_count = models.PositiveIntegerField(default=0)
    operator_amount_fen = models.BigIntegerField(null=True)  # net credit to the treasury wallet
    deduction = models.ForeignKey("tax.TaxDeduction", null=True, on_delete=models.DO_NOTHING, db_constraint=False,
                                  db_index=False, related_name="+")
    case = models.ForeignKey("DiscrepancyCase", null=True, on_delete=models.DO_NOTHING, db_constraint=False,
                             db_index=False, related_name="results")

    class Meta:
        verbose_name = "对账结果 (reconciliation result)"
        ordering = ["entrust_date", "tra_no"]
        constraints = [models.UniqueConstraint(fields=["run", "tax_org_code", "entrust_date", "tra_no"],
                                               name="tax_recon_result_once")]

    @property
    def ours_state_label(self) -> str:
        """Our deduction's state as the pages show it (the CSV and the API keep the code)."""
        from tax.models import DeductionState

        return DeductionState(self.ours_state).label if self.ours_state in DeductionState.values else self.ours_state


class ReconciliationTotal(models.Model):
    """Count and sums of one outcome of one tax authority in a run, over every serial (matched ones
    included: those have no result row); written by the engine in the statement that writes the results."""

    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="outcome_totals")
    tax_org_code = models.CharField(max_length=12)
    outcome = models.CharField("结果 (outcome)", max_length=20, choices=Outcome.choices)
    count = models.PositiveIntegerField(default=0)
    tax_amount_fen = models.BigIntegerField(default=0)
    ours_amount_fen = models.BigIntegerField(default=0)
    operator_amount_fen = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = "对账汇总 (reconciliation total)"
        constraints = [models.UniqueConstraint(fields=["run", "tax_org_code", "outcome"],
                                               name="tax_recon_total_once")]


class CaseState(models.TextChoices):
    OPEN = "open", "待处理 (open)"
    INVESTIGATING = "investigating", "调查中 (investigating)"
    RESOLVED = "resolved", "已解决 (resolved)"


C = CaseState


class CaseMove(NamedTuple):
    at: dt.datetime
    to: str
    by: str
    note: str


class CaseWorkflow(ConcurrentTransitionMixin, models.Model):
    """What every discrepancy case has, whatever it is keyed on: open -> investigating -> resolved (a reason
    required), who moved it and when, a history of each move, and the correcting transfer a resolution links.
    Tax cases (below) are keyed on the tax serial; social insurance's cases (social_security) on the payment's
    request id, with these same transitions and `services.investigate` / `services.resolve`."""

    state = FSMField("状态 (state)", default=C.OPEN, choices=C.choices, protected=True)
    reason = models.TextField("处理说明 (resolution reason)", blank=True)
    investigated_by = models.CharField(max_length=150, blank=True)
    resolved_by = models.CharField("处理人 (resolver)", max_length=150, blank=True)
    # A resolution that moves money links the correcting transfer (made through the treasury's transfer
    # services); records themselves are never edited.
    correcting_transfer = models.ForeignKey("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                            related_name="+", verbose_name="更正转账 (correcting transfer)")
    history = models.JSONField("处理记录 (history)", default=list)
    created_at = models.DateTimeField()
    investigating_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def history_rows(self) -> list[CaseMove]:
        """The history as the pages show it: each move's moment as a datetime (stored as ISO text, shown in
        the local time zone) and the state it led to by its label."""
        labels = dict(C.choices)
        return [CaseMove(at=dt.datetime.fromisoformat(move["at"]), to=labels.get(move["to"], move["to"]),
                         by=move.get("by", ""), note=move.get("note", "")) for move in self.history]

    # field by name: the transitions then belong to each concrete model's own copy of the field
    @transition(field="state", source=C.OPEN, target=C.INVESTIGATING)
    def investigate(self):
        pass

    @transition(field="state", source=[C.OPEN, C.INVESTIGATING], target=C.RESOLVED,
                conditions=[lambda case: bool(case.reason.strip())])
    def resolve(self):
        pass


class DiscrepancyCase(CaseWorkflow):
    """A discrepancy of one serial and kind; survives re-runs (found again = same case)."""

    tax_org_code = models.CharField("征收机关代码 (tax authority code)", max_length=12)
    entrust_date = models.DateField("委托日期 (entrust date)")
    tra_no = models.CharField("交易流水号 (transaction number)", max_length=24)
    outcome = models.CharField("差异类型 (kind)", max_length=20, choices=Outcome.choices)
    check_date = models.DateField("对账日期 (check date)")
    first_run = models.ForeignKey(ReconciliationRun, on_delete=models.PROTECT, related_name="+")

    class Meta:
        verbose_name = "对账差异 (discrepancy case)"
        ordering = ["-check_date", "tra_no"]
        constraints = [models.UniqueConstraint(fields=["tax_org_code", "entrust_date", "tra_no", "outcome"],
                                               name="tax_recon_case_once")]
        indexes = [models.Index(fields=["check_date", "state"])]

    def __str__(self) -> str:
        return f"{self.tax_org_code}/{self.entrust_date:%Y%m%d}/{self.tra_no} {self.outcome} {self.state}"


# ---------------------------------------------------------------------------------------------
# Corrections: money moved to settle a case, by a transfer, maker-checker
# ---------------------------------------------------------------------------------------------


class CorrectionKind(models.TextChoices):
    REFUND = "refund", "退还多扣 (return an over-debit to the taxpayer)"
    COLLECT = "collect", "补收少扣 (collect a shortfall under the agreement)"


class CorrectionState(models.TextChoices):
    PROPOSED = "proposed", "待审批 (waiting for approval)"
    APPROVED = "approved", "已批准，已转账 (approved; transfer made)"
    REJECTED = "rejected", "已拒绝 (rejected)"


# A correction's transfers are the batch, and its events the trace stream, of its case: "tax-recon-case-<id>".
CASE_STREAM_PREFIX = "tax-recon-case-"


class CaseCorrection(ConcurrentTransitionMixin, models.Model):
    """A correcting transfer for a case: proposed by one tax staff member (the maker), approved by another
    (the checker), whose approval creates the transfer through the treasury's transfer services in the
    same transaction. Records are never edited; the transfer is linked from the case."""

    case = models.ForeignKey(DiscrepancyCase, on_delete=models.PROTECT, related_name="corrections")
    kind = models.CharField("更正方式 (kind)", max_length=10, choices=CorrectionKind.choices)
    amount_fen = models.BigIntegerField("金额 (amount, fen)")
    reason = models.CharField("原因 (reason)", max_length=255)
    deduction = models.ForeignKey("tax.TaxDeduction", on_delete=models.PROTECT, related_name="+")
    payer = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                              verbose_name="付款钱包 (payer wallet)")
    payee = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="+",
                              verbose_name="收款钱包 (payee wallet)")
    state = FSMField("状态 (state)", default=CorrectionState.PROPOSED, choices=CorrectionState.choices,
                     protected=True)
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                    verbose_name="提出人 (proposed by)")
    proposed_at = models.DateTimeField()
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+", verbose_name="审批人 (approved or rejected by)")
    decided_at = models.DateTimeField(null=True, blank=True)
    reject_reason = models.CharField("拒绝原因 (reason rejected)", max_length=255, blank=True)
    transfer = models.ForeignKey("treasury.Transfer", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+", verbose_name="更正转账 (correcting transfer)")

    class Meta:
        verbose_name = "差异更正 (case correction)"
        ordering = ["-proposed_at"]
        constraints = [
            models.CheckConstraint(name="tax_recon_correction_amount_positive", condition=models.Q(amount_fen__gt=0)),
            # One correction waits for approval at a time per case.
            models.UniqueConstraint(fields=["case"], condition=models.Q(state="proposed"),
                                    name="tax_recon_correction_one_proposed"),
        ]

    def __str__(self) -> str:
        return f"case {self.case_id} {self.kind} {self.amount_fen} {self.state}"

    @property
    def stream_key(self) -> str:
        return f"{CASE_STREAM_PREFIX}{self.case_id}"

    @transition(field=state, source=CorrectionState.PROPOSED, target=CorrectionState.APPROVED)
    def approve(self):
        pass

    @transition(field=state, source=CorrectionState.PROPOSED, target=CorrectionState.REJECTED)
    def reject(self):
        pass
