"""Errors the treasury core raises to domain code. Each has a `code` an API client can act on."""


class TreasuryError(Exception):
    code = "treasury_error"


class InvalidTransfers(TreasuryError):
    """Some requested transfers cannot be created; nothing was written.

    `problems` lists (index in the request, field, reason) for every bad item, not just the first.
    """

    code = "invalid_transfers"

    def __init__(self, problems: list[tuple[int, str, str]]):
        self.problems = problems
        shown = "; ".join(f"#{i} {field}: {reason}" for i, field, reason in problems[:10])
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} transfer(s) rejected: {shown}{more}")


class IdempotencyConflict(TreasuryError):
    """An idempotency key was reused for a different payment."""

    code = "idempotency_conflict"


class TransferNotReversible(TreasuryError):
    code = "not_reversible"
