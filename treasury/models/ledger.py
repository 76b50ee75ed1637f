"""Double-entry ledger: accounts with balances, and entries that never change.

Every movement posts entries that sum to zero (one transfer: payer -amount, payee +amount).
A balance is always the sum of its account's entries; `manage.py ledger_check` proves both.
"""
from django.db import models


class LedgerAccount(models.Model):
    class Kind(models.TextChoices):
        WALLET = "wallet", "钱包 (wallet)"
        TREASURY_SINGLE = "treasury_single", "国库单一账户 (treasury single account)"
        FISCAL_ZERO_BALANCE = "fiscal_zero_balance", "财政零余额账户 (fiscal zero-balance account)"
        UNIT_ZERO_BALANCE = "unit_zero_balance", "单位零余额账户 (budget unit zero-balance account)"
        CLEARING = "clearing", "清算账户 (clearing account)"
        EXTERNAL = "external", "外部资金 (money from outside the ledger)"

    # Unique by a constraint and organization indexed only where set (Meta): see Person.resident_id.
    code = models.CharField("账户代码 (account code)", max_length=64)
    name = models.CharField("名称 (name)", max_length=200)
    kind = models.CharField("类别 (kind)", max_length=32, choices=Kind.choices)
    wallet = models.OneToOneField(
        "treasury.Wallet", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_account"
    )
    organization = models.ForeignKey(
        "treasury.Organization", null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_accounts",
        db_index=False,
    )
    # Kept by the posting service in the same transaction as the entries; never set by hand.
    balance_fen = models.BigIntegerField("余额 (balance, fen)", default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "账户 (ledger account)"
        verbose_name_plural = "账户 (ledger accounts)"
        constraints = [models.UniqueConstraint(fields=["code"], name="ledger_account_code_unique")]
        indexes = [models.Index(fields=["organization"], name="ledger_account_organization",
                                condition=models.Q(organization__isnull=False))]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class LedgerEntry(models.Model):
    class Kind(models.TextChoices):
        SETTLEMENT = "settlement", "结算 (settlement)"
        RETURN = "return", "退回 (return)"
        REVERSAL = "reversal", "冲正 (reversal)"

    # No single-column indexes: the unique (transfer, account, kind) and (account, posted_at) indexes
    # below lead with these columns already, and every index is paid on each posting.
    # No foreign-key constraints either: entries are inserted only by the posting statement, which
    # reads the transfer and account rows it names, and on PostgreSQL a trigger refuses to delete a
    # transfer or an account (migration 0005), so a named row exists for ever. The per-row check at
    # commit (an index probe and a row lock for each of two entries) cost a tenth of settling;
    # ledger_check still looks for an entry naming a row that is not there.
    transfer = models.ForeignKey("treasury.Transfer", on_delete=models.PROTECT, related_name="entries", db_index=False,
                                 db_constraint=False)
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="entries", db_index=False,
                                db_constraint=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Signed: positive increases the account's balance, negative decreases it.
    amount_fen = models.BigIntegerField()
    posted_at = models.DateTimeField()

    class Meta:
        verbose_name = "分录 (ledger entry)"
        constraints = [
            models.CheckConstraint(name="entry_amount_not_zero", condition=~models.Q(amount_fen=0)),
            # A transfer posts each kind to each account once: a retried posting cannot double up.
            models.UniqueConstraint(fields=["transfer", "account", "kind"], name="entry_once_per_transfer_kind"),
        ]
        indexes = [models.Index(fields=["account", "posted_at"])]
