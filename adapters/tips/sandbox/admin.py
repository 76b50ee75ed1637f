"""Client of the sandbox tax system's admin endpoints (tests, demo). A real tax system has none of them."""
from __future__ import annotations

from adapters.sandbox_common.admin import AdminClientError, JsonAdminClient


class TipsSandboxAdminError(AdminClientError):
    """The sandbox tax system refused an admin call (502 when the service gave no readable reply)."""


class TipsSandboxAdminClient(JsonAdminClient):
    error = TipsSandboxAdminError

    def __init__(self, base_url: str, api_key: str, *, timeout_seconds: float = 60.0):
        super().__init__(base_url, api_key, timeout_seconds=timeout_seconds)

    def register_agreement(self, *, tax_pay_code: str, tax_pay_name: str, pay_acct: str, protocol_no: str,
                           hand_org_name: str = "", vc_sign: str = "0", **codes) -> dict:
        """Register a taxpayer and agreement, send 9114 to the service; the 9115 answer: vc_no, vc_result
        ("0" passed), add_word, state (verified / rejected / unanswered), msg_id, reply_msg_no,
        reply_signature_valid, result (a 9120's result when the service refused the message)."""
        return self._call("POST", "/admin/agreements", {
            "tax_pay_code": tax_pay_code, "tax_pay_name": tax_pay_name, "pay_acct": pay_acct,
            "protocol_no": protocol_no, "hand_org_name": hand_org_name, "vc_sign": vc_sign, **codes})

    def send_deduction(self, *, protocol_no: str, amount_fen: int, tax_type_name: str = "增值税") -> dict:
        """Send a 3001; the 2001 answer: tra_no, result, add_word, amount_fen, tax_date, msg_id, ..."""
        return self._call("POST", "/admin/deductions", {"protocol_no": protocol_no, "amount_fen": amount_fen,
                                                         "tax_type_name": tax_type_name})

    def send_package(self, *, protocol_no: str = "", count: int = 0, amount_fen: int = 0, items: list | None = None,
                     return_term: int = 3) -> dict:
        """Send a 3102 (count items of amount_fen for one agreement, or `items` [{protocol_no, amount_fen}]); the
        9121 answer: result, add_word, pack_no, tra_nos, all_num, all_amount_fen, msg_id, ..."""
        payload = {"return_term": return_term}
        payload.update({"items": items} if items else {"protocol_no": protocol_no, "count": count,
                                                       "amount_fen": amount_fen})
        return self._call("POST", "/admin/packages", payload)

    def send_test(self, *, remark: str = "") -> dict:
        """Send a 9005; the 9120 answer."""
        return self._call("POST", "/admin/test", {"remark": remark})

    def results(self) -> list[dict]:
        """The 2102 results received, each once (deduped), with their lines."""
        return self._call("GET", "/admin/results")["results"]

    def send_check_detail(self, date, *, plant: dict | None = None, chk_acct_ord: str = "0001") -> dict:
        """Send the day's 3111 (`date`: a date or YYYYMMDD) built from the deductions it sent and got answered
        as paid; `plant` adds differences: {"drop": [tra_no], "change_amount": {tra_no: amount_fen},
        "unknown": [{"tra_no", "amount_fen"}], "duplicate": [tra_no]}. The 9120 answer: result, add_word,
        all_num, all_amount_fen, tra_nos, msg_id, ..."""
        chk_date = date if isinstance(date, str) else date.strftime("%Y%m%d")
        return self._call("POST", "/admin/check-detail", {"chk_date": chk_date, "plant": plant or {},
                                                          "chk_acct_ord": chk_acct_ord})

    def check_results(self) -> list[dict]:
        """The 2111 results received, each once (deduped on the check date and order)."""
        return self._call("GET", "/admin/check-results")["results"]

    def send_refund_order(self, *, items: list[dict] | None = None, resend: str = "", draw_back_tre_code: str = "",
                          tax_org_code: str = "", return_term: int = 3) -> dict:
        """Send a 1104 refund order of `items` [{tax_pay_code, tax_pay_name, payee_acct, amount_fen, payee_name?}]
        (paid from the treasury `draw_back_tre_code`), or `resend` (a pack_no) the same order again; the 9121
        answer: result, add_word, pack_no, tra_nos, all_num, all_amount_fen, msg_id, ..."""
        if resend:
            return self._call("POST", "/admin/refund-orders", {"resend": resend})
        return self._call("POST", "/admin/refund-orders", {
            "items": items or [], "draw_back_tre_code": draw_back_tre_code, "tax_org_code": tax_org_code,
            "return_term": return_term})

    def entry_details(self) -> list[dict]:
        """The 3139 treasury entry packages received, the latest of each (tax org, treasury, day, package)."""
        return self._call("GET", "/admin/entry-details")["details"]

    def refund_results(self) -> list[dict]:
        """The 2104 refund results received, each once (deduped on the order), with their lines."""
        return self._call("GET", "/admin/refund-results")["results"]

    def send_reversal(self, *, tra_no: str, entrust_date: str = "", tax_org_code: str = "", reason: str = "") -> dict:
        """Send a 1021 reversal of the deduction `tra_no`; the 2021 answer: cancel_answer ("0" reversed or never
        debited, "1" not reversed), result, add_word, cancel_no, msg_id, ..."""
        return self._call("POST", "/admin/reversals", {"tra_no": tra_no, "entrust_date": entrust_date,
                                                       "tax_org_code": tax_org_code, "reason": reason})

    def send_stop(self, *, pack_no: str, tra_no: str = "", entrust_date: str = "", tax_org_code: str = "",
                  reason: str = "") -> dict:
        """Send a 1123 stop payment of a package (or its item `tra_no`); the 2123 answer: stop_num,
        stop_amount_fen, done_num, result, add_word, stop_no, msg_id, ..."""
        return self._call("POST", "/admin/stops", {"pack_no": pack_no, "tra_no": tra_no, "entrust_date": entrust_date,
                                                   "tax_org_code": tax_org_code, "reason": reason})

    def deliveries(self, msg_id: str) -> int:
        """How many times a message with this MsgID was received."""
        return self._call("GET", f"/admin/received/{msg_id}")["deliveries"]

    def counts(self) -> dict:
        return self._call("GET", "/admin/counts")

    def set_fault(self, name: str, *, count: int | None = None, sleep_seconds: float | None = None) -> dict:
        """Arm a fault switch: fault, timeout, lost_reply, duplicate, bad_signature (see sandbox/faults.py)."""
        return self._call("POST", "/admin/faults", {"name": name, "count": count, "sleep_seconds": sleep_seconds})

    def faults(self) -> dict:
        return self._call("GET", "/admin/faults")

    def clear_faults(self) -> dict:
        return self._call("DELETE", "/admin/faults")

    def reset(self) -> dict:
        return self._call("POST", "/admin/reset")

    # Social-insurance desk (sandbox/social.py)
    def social_declarations(self) -> list[dict]:
        """The declarations it confirmed or refused (tax_org_code, decl_no, state, vou_no, all_amount_fen, add_word)
        with the payments notified (paid_amount_fen, pay_acct, pay_date, pay_serial)."""
        return self._call("GET", "/admin/social/declarations")["declarations"]

    def social_flexible_payments(self) -> list[dict]:
        """The flexible-employment payments notified (5104): pay_no, payer_id, start_period, end_period,
        month_num, premium_amount_fen, late_fee_fen, amount_fen, pay_acct, pay_date, pay_serial."""
        return self._call("GET", "/admin/social/flexible-payments")["payments"]

    def refuse_social_declarations(self, *, reason: str = "", count: int = 1) -> dict:
        """Refuse the next `count` declarations (5102 with S0001 and `reason`)."""
        return self._call("POST", "/admin/social/refusals", {"reason": reason, "count": count})
