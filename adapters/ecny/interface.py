"""The interface an e-CNY operator integration implements.

The service talks to a designated operator (a bank running e-CNY wallets) only through
`OperatorClient`. The project ships one implementation over HTTP (`adapters.ecny.client`)
and a sandbox operator that speaks the same protocol (`adapters.ecny.sandbox`). Swapping the
sandbox for a real operator is configuration (`ECNY_OPERATOR_URL`), not code.

Every money-moving call carries a `request_id`: the transfer's idempotency key. The operator
applies a request id at most once; sending it again returns the original result.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

# The longest request id the operator takes (adapters/ecny/README.md): a batch carrying a longer one is refused
# as a whole.
MAX_REQUEST_ID_LENGTH = 64


class TransferStatus:
    """What the operator says happened to one request id."""

    SETTLED = "settled"  # money moved (e-CNY settles on payment)
    FAILED = "failed"  # refused; nothing moved; `code` says why
    NOT_FOUND = "not_found"  # the operator never applied this request id (query only)
    RETURNED = "returned"  # settled earlier, then the money came back to the payer (退回)
    REVERSED = "reversed"  # settled earlier, then reversed at our request (冲正)


# Refusal codes the operator answers with. The sandbox uses exactly these; a real operator's
# codes are mapped onto them in its client.
class RefusalCode:
    WALLET_NOT_FOUND = "WALLET_NOT_FOUND"
    WALLET_INACTIVE = "WALLET_INACTIVE"  # frozen or closed
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    SINGLE_LIMIT_EXCEEDED = "SINGLE_LIMIT_EXCEEDED"  # payer wallet class: one payment too large
    DAILY_LIMIT_EXCEEDED = "DAILY_LIMIT_EXCEEDED"  # payer wallet class: day's payments too large
    BALANCE_CAP_EXCEEDED = "BALANCE_CAP_EXCEEDED"  # payee wallet class: balance would pass the cap
    CONDITION_PAYEE_NOT_ALLOWED = "CONDITION_PAYEE_NOT_ALLOWED"  # smart contract: payee not in list
    CONDITION_PAYEE_CATEGORY = "CONDITION_PAYEE_CATEGORY"  # smart contract: wrong kind of payee
    CONDITION_PURPOSE = "CONDITION_PURPOSE"  # smart contract: purpose code not allowed
    CONDITION_EXPIRED = "CONDITION_EXPIRED"  # smart contract: spend-by date passed
    INVALID_REQUEST = "INVALID_REQUEST"  # malformed instruction (amount <= 0, same payer and payee)
    NOT_REVERSIBLE = "NOT_REVERSIBLE"  # reversal of something that is not settled


@dataclass(frozen=True)
class Conditions:
    """Smart-contract conditions the operator enforces on a payment (专款专用).

    Empty fields mean "no condition". `payee_category` is a wallet type code (WT01 personal,
    WT09 corporate, ...), `expires_at` is the spend-by time.
    """

    allowed_payees: tuple[str, ...] = ()
    payee_category: str = ""
    purposes: tuple[str, ...] = ()
    expires_at: dt.datetime | None = None

    def is_empty(self) -> bool:
        return not (self.allowed_payees or self.payee_category or self.purposes or self.expires_at)

    def to_json(self) -> dict:
        return {
            "allowed_payees": list(self.allowed_payees),
            "payee_category": self.payee_category,
            "purposes": list(self.purposes),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }

    @classmethod
    def from_json(cls, data: dict | None) -> "Conditions":
        if not data:
            return cls()
        expires = data.get("expires_at")
        return cls(
            allowed_payees=tuple(data.get("allowed_payees") or ()),
            payee_category=data.get("payee_category") or "",
            purposes=tuple(data.get("purposes") or ()),
            expires_at=dt.datetime.fromisoformat(expires) if expires else None,
        )


@dataclass(frozen=True)
class TransferInstruction:
    request_id: str  # our idempotency key; the operator dedupes on it
    payer_wallet: str
    payee_wallet: str
    amount_fen: int
    purpose_code: str = ""
    memo: str = ""
    conditions: Conditions = field(default_factory=Conditions)


@dataclass(frozen=True)
class TransferResult:
    request_id: str
    status: str  # a TransferStatus value
    operator_txn_id: str = ""
    code: str = ""  # a RefusalCode when failed, else ""
    message: str = ""
    settled_at: dt.datetime | None = None


@dataclass(frozen=True)
class WalletCheck:
    wallet_id: str
    exists: bool
    active: bool = False
    holder_name_matches: bool = False
    wallet_type: str = ""  # WT01 personal, WT09 corporate, ...
    wallet_class: int | None = None  # 1-4 for personal wallets

    @classmethod
    def passed(cls, *, wallet_id: str, wallet_type: str, wallet_class: int | None) -> "WalletCheck":
        """A check that passed earlier and was recorded (a payee file's import keeps type and class)."""
        return cls(wallet_id=wallet_id, exists=True, active=True, holder_name_matches=True, wallet_type=wallet_type,
                   wallet_class=wallet_class)


@dataclass(frozen=True)
class WalletBalance:
    wallet_id: str
    balance_fen: int
    status: str  # active, frozen, closed
    as_of: dt.datetime


@dataclass(frozen=True)
class StatementLine:
    operator_txn_id: str
    request_id: str
    booked_at: dt.datetime
    direction: str  # "debit" or "credit", seen from the statement's wallet
    counterparty_wallet: str
    amount_fen: int
    kind: str  # "transfer", "return", "reversal", "funding"


class OperatorError(Exception):
    """Base of everything the operator client raises."""


class OperatorUnavailable(OperatorError):
    """Timeout, connection failure or 5xx: the outcome of a money call is UNKNOWN.

    Never resend blindly: query by request id (the recovery task does).
    """


class OperatorProtocolError(OperatorUnavailable):
    """The reply could not be read (malformed, wrong shape). Outcome unknown, as above."""


class OperatorRejected(OperatorError):
    """The operator refused the whole request (4xx: bad credentials, malformed request).

    Terminal for that request; nothing was applied.
    """


class OperatorClient(Protocol):
    def verify_wallets(self, items: list[tuple[str, str]]) -> list[WalletCheck]:
        """Check (wallet_id, holder_name) pairs in one call; one result per pair, same order."""

    def transfer(self, instruction: TransferInstruction) -> TransferResult:
        """Apply one transfer (at most once per request id)."""

    def transfer_batch(self, instructions: list[TransferInstruction]) -> list[TransferResult]:
        """Apply many transfers in one call; each is independent; one result each, same order."""

    def query(self, request_ids: list[str]) -> list[TransferResult]:
        """What happened to these request ids; NOT_FOUND for ids never applied."""

    def reverse(self, *, request_id: str, original_request_id: str, reason: str) -> TransferResult:
        """Reverse a settled transfer (冲正). `request_id` is the reversal's own idempotency key."""

    def statement(self, wallet_id: str, day: dt.date) -> list[StatementLine]:
        """Every booking on a wallet for one business day (Asia/Shanghai)."""

    def balance(self, wallet_id: str) -> WalletBalance:
        """A wallet's balance now (for a payer's funding check before a run: 资金到位)."""
