from .ledger import LedgerAccount, LedgerEntry
from .parties import Organization, Person, Wallet
from .transfers import NOT_PAID_STATES, UNPAID_STATES, Transfer, TransferOutbox, TransferState

__all__ = [
    "LedgerAccount",
    "LedgerEntry",
    "Organization",
    "Person",
    "Transfer",
    "TransferOutbox",
    "TransferState",
    "NOT_PAID_STATES",
    "UNPAID_STATES",
    "Wallet",
]
