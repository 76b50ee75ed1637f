"""The sandbox tax system's check detail of a day (3111) lists what it held as paid at the end of that day: a
deduction reversed (1021) that day is left out, one reversed on a later day is still listed."""
import sqlite3

from adapters.tips.sandbox.ledger import TipsLedger

D, NEXT = "20261126", "20261127"


def ledger_with_paid_deductions(path) -> TipsLedger:
    ledger = TipsLedger(storage_path=str(path))
    ledger.register_agreement({"tax_pay_code": "91350100M000100Y43", "tax_pay_name": "示范企业", "protocol_no": "P1",
                               "tax_org_code": "13701000000", "pay_op_bk_code": "300100000001",
                               "pay_bk_code": "300100000001", "pay_acct": "3000000000000001",
                               "hand_org_name": "示范企业", "vc_no": "00000001"})
    ledger.record_deductions([{"tax_org_code": "13701000000", "entrust_date": D, "tra_no": tra_no, "pack_no": "",
                               "protocol_no": "P1", "pay_acct": "3000000000000001", "amount_fen": 100_00,
                               "msg_id": f"{n:020d}"} for n, tra_no in enumerate(["00000001", "00000002", "00000003"])])
    for tra_no in ("00000001", "00000002", "00000003"):
        ledger.set_deduction_answer(tax_org_code="13701000000", entrust_date=D, tra_no=tra_no, result="90000",
                                    add_word="", tax_date=D)
    return ledger


def reversal(tra_no: str, cancel_date: str, answer: str = "0") -> dict:
    return {"tax_org_code": "13701000000", "ori_entrust_date": D, "ori_tra_no": tra_no, "cancel_no": tra_no,
            "cancel_date": cancel_date, "cancel_answer": answer, "result": "90000", "add_word": ""}


def test_a_reversal_of_a_later_day_leaves_the_deduction_in_its_days_check(tmp_path):
    ledger = ledger_with_paid_deductions(tmp_path / "tips.sqlite")
    ledger.record_reversal(reversal("00000001", D))       # reversed the same day: not paid at the end of D
    ledger.record_reversal(reversal("00000002", NEXT))    # reversed on D+1: still paid at the end of D
    assert [row["tra_no"] for row in ledger.paid_deductions(D)] == ["00000002", "00000003"]
    assert ledger.paid_deductions(NEXT) == []  # D+1's check is of D+1's deductions


def test_a_file_written_before_reversals_kept_their_date_is_read_as_before(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the reversals table as it was
        conn.execute("CREATE TABLE reversals (tax_org_code TEXT NOT NULL, ori_entrust_date TEXT NOT NULL, ori_tra_no"
                     " TEXT NOT NULL, cancel_no TEXT NOT NULL, cancel_answer TEXT NOT NULL, result TEXT NOT NULL,"
                     " add_word TEXT NOT NULL, PRIMARY KEY (tax_org_code, ori_entrust_date, ori_tra_no)) WITHOUT ROWID")
        conn.execute("INSERT INTO reversals VALUES ('13701000000', ?, '00000003', '9', '0', '90000', '')", (D,))
    ledger = ledger_with_paid_deductions(path)
    ledger.record_reversal(reversal("00000002", NEXT))
    # the undated reversal still leaves its deduction out, as before
    assert [row["tra_no"] for row in ledger.paid_deductions(D)] == ["00000001", "00000002"]


def test_2111s_for_two_payee_banks_of_one_check_are_both_kept(tmp_path):
    """A day's check comes per payee bank; each bank's 2111 is its own, even under the same check order."""
    ledger = TipsLedger(storage_path=str(tmp_path / "tips.sqlite3"))

    def reply_for(code, note):
        return f"{code} {note}".encode()

    def answer(payee_bank, result):
        return {"ori_pay_bank_no": "300100000001", "ori_chk_date": D, "ori_chk_acct_ord": "0001",
                "ori_payee_bank_no": payee_bank, "result": result, "add_word": ""}

    assert ledger.store_check_result(msg_id="1" * 20, result=answer("011370100001", "0"), reply_for=reply_for) == b"90000 "
    assert ledger.store_check_result(msg_id="2" * 20, result=answer("011370200002", "1"), reply_for=reply_for) == b"90000 "
    assert ledger.store_check_result(msg_id="3" * 20, result=answer("011370200002", "1"),
                                     reply_for=reply_for).startswith(b"94051")  # the same answer again
    kept = {(r["ori_payee_bank_no"], r["result"]) for r in ledger.check_results()}
    assert kept == {("011370100001", "0"), ("011370200002", "1")}
