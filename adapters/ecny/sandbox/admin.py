"""Client of the sandbox operator's admin endpoints, used by the demo and the tests.

The admin endpoints exist only on the sandbox; a real operator has none of them.
"""
from __future__ import annotations

import datetime as dt

from adapters.sandbox_common.admin import AdminClientError, JsonAdminClient


class SandboxAdminError(AdminClientError):
    """The sandbox operator refused an admin call."""


class SandboxAdminClient(JsonAdminClient):
    error = SandboxAdminError

    def open_wallet(self, *, wallet_type: str, holder_name: str, wallet_class: int | None = None,
                    wallet_id: str | None = None, operator_code: str = "001", balance_fen: int = 0) -> dict:
        """Open an active wallet (a free id under `operator_code` when `wallet_id` is not given),
        funded with `balance_fen` from issuance when positive. Returns the wallet as a dict."""
        wallet = self._call("POST", "/admin/wallets", {"wallet_id": wallet_id, "operator_code": operator_code,
                                                        "wallet_type": wallet_type, "wallet_class": wallet_class,
                                                        "holder_name": holder_name})
        if balance_fen:
            wallet = self.fund(wallet_id=wallet["wallet_id"], amount_fen=balance_fen)
        return wallet

    def open_wallets(self, *, wallets: list[dict]) -> int:
        """Open many wallets in one call, all or none. Each dict: wallet_id (16 digits), wallet_type,
        wallet_class (1-4 for personal, None for corporate), holder_name, optional balance_fen."""
        return self._call("POST", "/admin/wallets/bulk", {"wallets": wallets})["opened"]

    def fund(self, *, wallet_id: str, amount_fen: int) -> dict:
        """Money from issuance into the wallet (a 'funding' booking)."""
        return self._call("POST", f"/admin/wallets/{wallet_id}/fund", {"amount_fen": amount_fen})

    def set_status(self, *, wallet_id: str, status: str) -> dict:
        """status: active, frozen or closed."""
        return self._call("POST", f"/admin/wallets/{wallet_id}/status", {"status": status})

    def wallet(self, *, wallet_id: str) -> dict:
        return self._call("GET", f"/admin/wallets/{wallet_id}")

    def balance(self, *, wallet_id: str) -> int:
        return self.wallet(wallet_id=wallet_id)["balance_fen"]

    def return_transfer(self, *, request_id: str, reason: str = "") -> dict:
        """The settled transfer's money comes back to the payer (退回); returns its query result."""
        return self._call("POST", f"/admin/transfers/{request_id}/return", {"reason": reason})

    def set_fault(self, name: str, *, count: int | None = None, probability: float | None = None,
                  value: int | None = None, sleep_seconds: float | None = None, seed: int | None = None) -> dict:
        """Arm a fault switch (see the README): for the next `count` money calls, or with a probability;
        `latency_ms` takes `value`; `sleep_seconds` sets how long timeout_after_apply withholds the reply."""
        return self._call("POST", "/admin/faults", {"name": name, "count": count, "probability": probability,
                                                     "value": value, "sleep_seconds": sleep_seconds, "seed": seed})

    def faults(self) -> dict:
        return self._call("GET", "/admin/faults")

    def clear_faults(self) -> dict:
        return self._call("DELETE", "/admin/faults")

    def set_clock(self, *, at: dt.datetime | None) -> dict:
        """Pin the operator's clock (aware datetime), or None to let it run."""
        return self._call("POST", "/admin/clock", {"now": at.isoformat() if at else None})

    def reset(self) -> dict:
        """Forget all wallets, transfers and bookings; clear faults and the pinned clock."""
        return self._call("POST", "/admin/reset")
