from .ledger import LedgerAccount, LedgerEntry
from .parties import Organization, Person, Wallet
from .transfers import UNPAID_STATES, Transfer, TransferOutbox, TransferState

__all__ = [
    "LedgerAccount",
    "LedgerEntry",
    "Organization",
    "Person",
    "Transfer",
    "TransferOutbox",
    "TransferState",
    "UNPAID_STATES",
    "Wallet",
]
