from .ledger import LedgerAccount, LedgerEntry
from .parties import Organization, Person, Wallet
from .transfers import Transfer, TransferOutbox, TransferState

__all__ = [
    "LedgerAccount",
    "LedgerEntry",
    "Organization",
    "Person",
    "Transfer",
    "TransferOutbox",
    "TransferState",
    "Wallet",
]
