from .ledger import LedgerAccount, LedgerEntry
from .parties import Organization, Person, Wallet
from .transfers import Transfer, TransferState

__all__ = [
    "LedgerAccount",
    "LedgerEntry",
    "Organization",
    "Person",
    "Transfer",
    "TransferState",
    "Wallet",
]
