"""Client of the sandbox budget system's admin endpoints, used by the demo, the benchmark and the tests.

The admin endpoints exist only on the sandbox; a real budget system has none of them.
"""
from __future__ import annotations

from adapters.sandbox_common.admin import AdminClientError, JsonAdminClient


class BudgetSandboxAdminError(AdminClientError):
    """The sandbox budget system refused an admin call."""


class BudgetSandboxAdminClient(JsonAdminClient):
    error = BudgetSandboxAdminError

    def __init__(self, base_url: str, api_key: str, *, timeout_seconds: float = 30.0):
        super().__init__(base_url, api_key, timeout_seconds=timeout_seconds)

    def create_quotas(self, quotas: list[dict]) -> int:
        """Create quotas, all or none (409 if an id exists). Each dict: quota_id, adm_div_code,
        fiscal_year, agency_code, agency_name, exp_func_code, exp_eco_code, fund_type_code,
        pay_type_code, amount_fen, purpose (optional)."""
        return self._call("POST", "/admin/quotas", {"quotas": quotas})["created"]

    def create_quota(self, **quota) -> dict:
        """One quota (fields as `create_quotas`); returns it as the sandbox holds it."""
        self.create_quotas([quota])
        return self.quota(quota_id=quota["quota_id"])

    def quota(self, *, quota_id: str) -> dict:
        """The quota's figures: amount_fen, used_fen, reserved_fen, available_fen and its codes."""
        return self._call("GET", f"/admin/quotas/{quota_id}")

    def set_quota_amount(self, *, quota_id: str, amount_fen: int) -> dict:
        """Change a quota's amount (a budget adjustment on the budget system's side); 409 below
        used + reserved. Returns the quota."""
        return self._call("POST", f"/admin/quotas/{quota_id}/amount", {"amount_fen": amount_fen})

    def voucher(self, *, voucher_no: str) -> dict:
        """The voucher's status fields (state, amount_fen, line_count, reported_count, paid_fen,
        returned_fen, message), `line_states` (counts of pending, paid, returned) and `lines` (each
        with tracking_id, payee_name, payee_acct_no, payee_bank_no, amount_fen, purpose, state,
        report_no, paid_at, agent_business_no, return_reason), in TrackingID order."""
        return self._call("GET", f"/admin/vouchers/{voucher_no}")

    def counts(self) -> dict:
        """Rows in the sandbox's tables: quotas, vouchers, voucher_lines, reports."""
        return self._call("GET", "/admin/counts")

    def set_fault(self, name: str, *, count: int | None = None, operation: str | None = None,
                  phase: str | None = None, sleep_seconds: float | None = None) -> dict:
        """Arm a fault switch (fault, timeout, lost_reply, duplicate_ack) for the next `count` calls of
        `operation` (any when None); `timeout` takes `phase` (after_apply / before_apply) and
        `sleep_seconds` (set it just above the client's timeout to keep tests fast)."""
        return self._call("POST", "/admin/faults", {"name": name, "count": count, "operation": operation,
                                                     "phase": phase, "sleep_seconds": sleep_seconds})

    def faults(self) -> dict:
        return self._call("GET", "/admin/faults")

    def clear_faults(self) -> dict:
        return self._call("DELETE", "/admin/faults")

    def seed_demo(self) -> int:
        """Create the demo quotas (adapters.budget.sandbox.seed)."""
        return self._call("POST", "/admin/seed-demo")["created"]

    def reset(self) -> dict:
        """Forget every quota, voucher and report; clear the faults."""
        return self._call("POST", "/admin/reset")
