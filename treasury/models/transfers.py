"""Transfer: one e-CNY movement from a payer wallet to a payee wallet.

The state machine (django-fsm):

    pending --submit--> submitted --settle--> settled --mark_returned--> returned
       |                    |  \\--fail--> failed          \\--mark_reversed--> reversed
       |                    |--mark_unknown--> unknown --settle/fail (only from an operator query)
       |                    \\--requeue--> pending  (operator says it never applied the request id)
       \\--cancel--> cancelled

Bulk paths move many rows at once with one UPDATE guarded by the same sources
(`Transfer.sources_of(Transfer.settle)`), so single-object and set-based code obey one table.
"""
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition


class TransferState(models.TextChoices):
    PENDING = "pending", "待提交 (pending)"
    SUBMITTED = "submitted", "已提交 (submitted)"
    UNKNOWN = "unknown", "结果未明 (outcome unknown)"
    SETTLED = "settled", "已结算 (settled)"
    FAILED = "failed", "失败 (failed)"
    RETURNED = "returned", "已退回 (returned)"
    REVERSED = "reversed", "已冲正 (reversed)"
    CANCELLED = "cancelled", "已取消 (cancelled)"


S = TransferState
# Final states in which no money moved: a domain may pay the line again under a new key.
UNPAID_STATES = (S.FAILED, S.CANCELLED)
# Final states in which the payee does not hold the money: nothing moved, or it settled and came back to the payer
# (returned by the operator, or reversed). A line of a run paid by such a transfer is not paid.
NOT_PAID_STATES = (*UNPAID_STATES, S.RETURNED, S.REVERSED)


class Transfer(ConcurrentTransitionMixin, models.Model):
    idempotency_key = models.CharField("幂等键 (idempotency key)", max_length=80)  # unique: see Meta
    # No foreign-key constraints to wallets, organizations and content types (migration 0009): triggers on
    # those tables refuse to delete a row a transfer names, and `ledger_check` looks for missing ones.
    payer = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="outgoing_transfers",
                              db_constraint=False)
    payee = models.ForeignKey("treasury.Wallet", on_delete=models.PROTECT, related_name="incoming_transfers",
                              db_constraint=False)
    amount_fen = models.BigIntegerField("金额 (amount, fen)")
    purpose_code = models.CharField("用途代码 (purpose code)", max_length=16, blank=True)
    memo = models.CharField("附言 (memo)", max_length=140, blank=True)
    # The source document: a payroll line, a voucher line, a tax deduction, a refund, a premium.
    # (db_index off where a composite index below already leads with the column: every index
    # costs each of a transfer's state changes.)
    source_type = models.ForeignKey(ContentType, null=True, blank=True, on_delete=models.PROTECT, db_index=False,
                                    db_constraint=False)
    source_id = models.BigIntegerField(null=True, blank=True)
    source = GenericForeignKey("source_type", "source_id")
    source_ref = models.CharField("来源单据 (source document reference)", max_length=120, blank=True)
    # The organization on whose behalf the transfer runs (scopes who may see it).
    organization = models.ForeignKey(
        "treasury.Organization", on_delete=models.PROTECT, related_name="transfers", db_index=False,
        db_constraint=False,
    )
    # Transfers created together (one domain run) share a batch ref; it is also their trace stream.
    batch_ref = models.CharField("批次 (batch reference)", max_length=80)
    conditions = models.JSONField("智能合约条件 (smart-contract conditions)", null=True, blank=True)
    state = FSMField("状态 (state)", default=S.PENDING, choices=S.choices, protected=True)
    operator_txn_id = models.CharField("运营机构流水号 (operator transaction id)", max_length=64, blank=True)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.CharField(max_length=255, blank=True)
    submit_attempts = models.PositiveIntegerField(default=0)
    # Reversal attempts the operator refused: the next is asked under a new request id (reverse_transfer).
    # A database default too: the bulk paths COPY transfers without naming this column.
    reversal_refusals = models.PositiveIntegerField(default=0, db_default=0)
    # Held transfers wait for their domain to release them (a paused payroll run); the outbox
    # sweeper leaves them alone.
    held = models.BooleanField("暂缓 (held)", default=False)
    created_by = models.CharField("经办 (created by)", max_length=150, blank=True)
    created_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)  # settled, failed, cancelled, returned, reversed

    class Meta:
        verbose_name = "转账 (transfer)"
        verbose_name_plural = "转账 (transfers)"
        constraints = [
            # A constraint, not unique=True: PostgreSQL would add a second (LIKE) index to maintain.
            models.UniqueConstraint(fields=["idempotency_key"], name="transfer_idempotency_key_unique"),
            models.CheckConstraint(name="transfer_amount_positive", condition=models.Q(amount_fen__gt=0)),
            models.CheckConstraint(name="transfer_payer_not_payee", condition=~models.Q(payer=models.F("payee"))),
        ]
        # No index mentions state, submitted_at or settled_at: a state change then rewrites the row
        # in place (a PostgreSQL HOT update) instead of adding an entry to every index; the table's
        # fillfactor of 30 (migration 0004) leaves each row room on its page for both of its updates.
        # Open transfers are found through TransferOutbox instead.
        indexes = [
            models.Index(fields=["batch_ref"], name="transfer_batch_ref"),
            models.Index(fields=["organization", "created_at"]),
            models.Index(fields=["source_type", "source_id"]),
        ]

    def __str__(self) -> str:
        return f"Transfer {self.pk} {self.idempotency_key} {self.state}"

    # Transitions change state only; services do the I/O, postings and trace around them.
    @transition(field=state, source=S.PENDING, target=S.SUBMITTED)
    def submit(self):
        pass

    @transition(field=state, source=[S.SUBMITTED, S.UNKNOWN], target=S.SETTLED)
    def settle(self):
        pass

    @transition(field=state, source=[S.SUBMITTED, S.UNKNOWN], target=S.FAILED)
    def fail(self):
        pass

    @transition(field=state, source=S.SUBMITTED, target=S.UNKNOWN)
    def mark_unknown(self):
        pass

    @transition(field=state, source=[S.SUBMITTED, S.UNKNOWN], target=S.PENDING)
    def requeue(self):
        pass

    @transition(field=state, source=S.SETTLED, target=S.RETURNED)
    def mark_returned(self):
        pass

    @transition(field=state, source=S.SETTLED, target=S.REVERSED)
    def mark_reversed(self):
        pass

    @transition(field=state, source=S.PENDING, target=S.CANCELLED)
    def cancel(self):
        pass

    @staticmethod
    def sources_of(transition_method) -> list[str]:
        """The states a transition may start from, for set-based UPDATEs."""
        return sorted(transition_method._django_fsm.transitions.keys())

    @staticmethod
    def target_of(transition_method) -> str:
        targets = {t.target for t in transition_method._django_fsm.transitions.values()}
        (target,) = targets
        return target


class TransferOutbox(models.Model):
    """The transfers still waiting for an outcome (pending, submitted, unknown).

    A row exists exactly while its transfer is open; the transfer service adds and removes it in
    the same transaction as the state change. The recovery task and the outbox sweeper read this
    small table instead of an index on Transfer.state (see Transfer.Meta).
    """

    # No foreign-key constraint (as for ledger entries): the row is inserted in the transaction that
    # creates its transfer, and transfers are never deleted (a trigger refuses it on PostgreSQL).
    transfer = models.OneToOneField(Transfer, primary_key=True, on_delete=models.CASCADE, related_name="outbox",
                                    db_constraint=False)
    # The transfer's batch, so "is any transfer of this run still open?" (polled while a run is paid)
    # is one index probe instead of a walk over the run's settled transfers.
    batch_ref = models.CharField(max_length=80, default="")

    class Meta:
        verbose_name = "待决转账 (open transfer)"
        indexes = [models.Index(fields=["batch_ref"], name="transfer_outbox_batch_ref")]
