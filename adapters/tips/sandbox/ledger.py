"""The sandbox tax system's own books, in SQLite: taxpayers, the agreements it sent for verification,
deductions and packages it sent with the answers it got, the batch results (2102) and the reconciliation
results (2111) it received.

The tax side of the world, not the service's: its own file through the stdlib `sqlite3` module.
Received messages are deduped twice: on MsgID (a repeat is answered with the reply first given, byte for
byte) and on the package key (OriTaxOrgCode, OriEntrustDate, OriPackNo: a second 2102 for a package
under another MsgID is answered 94051 and not stored).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Callable

import orjson

from adapters.sandbox_common.ledger import SqliteStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS taxpayers (
    tax_pay_code TEXT PRIMARY KEY,
    tax_pay_name TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agreements (
    protocol_no TEXT PRIMARY KEY,
    tax_org_code TEXT NOT NULL,
    tax_pay_code TEXT NOT NULL REFERENCES taxpayers (tax_pay_code),
    pay_op_bk_code TEXT NOT NULL,
    pay_bk_code TEXT NOT NULL,
    pay_acct TEXT NOT NULL,
    hand_org_name TEXT NOT NULL,
    vc_no TEXT NOT NULL,
    state TEXT NOT NULL,  -- sent, verified, rejected, unanswered
    vc_result TEXT NOT NULL DEFAULT '',
    add_word TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS deductions (
    tax_org_code TEXT NOT NULL,
    entrust_date TEXT NOT NULL,
    tra_no TEXT NOT NULL,
    pack_no TEXT NOT NULL DEFAULT '',
    protocol_no TEXT NOT NULL,
    pay_acct TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    msg_id TEXT NOT NULL,
    result TEXT NOT NULL DEFAULT '',
    add_word TEXT NOT NULL DEFAULT '',
    tax_date TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tax_org_code, entrust_date, tra_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS packages (
    tax_org_code TEXT NOT NULL,
    entrust_date TEXT NOT NULL,
    pack_no TEXT NOT NULL,
    all_num INTEGER NOT NULL,
    all_amount_fen INTEGER NOT NULL,
    msg_id TEXT NOT NULL,
    ack_result TEXT NOT NULL DEFAULT '',
    ack_add_word TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tax_org_code, entrust_date, pack_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (
    ori_tax_org_code TEXT NOT NULL,
    ori_entrust_date TEXT NOT NULL,
    ori_pack_no TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    result TEXT NOT NULL,
    add_word TEXT NOT NULL,
    all_num INTEGER NOT NULL,
    all_amount_fen INTEGER NOT NULL,
    succ_num INTEGER NOT NULL,
    succ_amount_fen INTEGER NOT NULL,
    lines TEXT NOT NULL,  -- JSON list of {ori_tra_no, amount_fen, tax_vou_no, tax_date, result, add_word}
    received_at TEXT NOT NULL,
    PRIMARY KEY (ori_tax_org_code, ori_entrust_date, ori_pack_no)
) WITHOUT ROWID;
-- One 2111 per check detail answered: a day's check comes a package set per payee bank (treasury). (Files of
-- older sandboxes keep a table check_results without the payee bank; it is no longer read.)
CREATE TABLE IF NOT EXISTS check_replies (
    ori_pay_bank_no TEXT NOT NULL,
    ori_chk_date TEXT NOT NULL,
    ori_chk_acct_ord TEXT NOT NULL,
    ori_payee_bank_no TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    result TEXT NOT NULL,  -- 0 every record agrees, 1 some differ
    add_word TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (ori_pay_bank_no, ori_chk_date, ori_chk_acct_ord, ori_payee_bank_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refund_orders (
    tax_org_code TEXT NOT NULL,
    entrust_date TEXT NOT NULL,
    pack_no TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    message TEXT NOT NULL,  -- JSON: what was sent (head fields aside), to send the same order again
    ack_result TEXT NOT NULL DEFAULT '',
    ack_add_word TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tax_org_code, entrust_date, pack_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refund_results (
    ori_tax_org_code TEXT NOT NULL,
    ori_entrust_date TEXT NOT NULL,
    ori_pack_no TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    result TEXT NOT NULL,
    add_word TEXT NOT NULL,
    all_num INTEGER NOT NULL,
    all_amount_fen INTEGER NOT NULL,
    succ_num INTEGER NOT NULL,
    succ_amount_fen INTEGER NOT NULL,
    lines TEXT NOT NULL,  -- JSON list of {ori_tra_no, draw_back_vou_no, amount_fen, result, add_word}
    received_at TEXT NOT NULL,
    PRIMARY KEY (ori_tax_org_code, ori_entrust_date, ori_pack_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entry_details (
    tax_org_code TEXT NOT NULL,
    tre_code TEXT NOT NULL,
    in_tre_date TEXT NOT NULL,
    cur_pack_no INTEGER NOT NULL,
    child_pack_num INTEGER NOT NULL,
    msg_id TEXT NOT NULL,
    all_num INTEGER NOT NULL,
    all_amount_fen INTEGER NOT NULL,
    lines TEXT NOT NULL,  -- JSON list of {budget_type, budget_level_code, budget_subject_code, amount_fen, exp_tax_vou_no}
    received_at TEXT NOT NULL,
    PRIMARY KEY (tax_org_code, tre_code, in_tre_date, cur_pack_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reversals (
    tax_org_code TEXT NOT NULL,
    ori_entrust_date TEXT NOT NULL,
    ori_tra_no TEXT NOT NULL,
    cancel_no TEXT NOT NULL,
    cancel_date TEXT NOT NULL DEFAULT '',  -- the 1021's EntrustDate; '' in files written before it was kept
    cancel_answer TEXT NOT NULL,
    result TEXT NOT NULL,
    add_word TEXT NOT NULL,
    PRIMARY KEY (tax_org_code, ori_entrust_date, ori_tra_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS received (
    msg_id TEXT PRIMARY KEY,
    msg_no TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    reply BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


class SandboxConflict(Exception):
    def __init__(self, message: str, *, code: str = "CONFLICT", http_status: int = 409):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


class RefundLedger:
    """Refund orders (1104) it sent, their results (2104) it received, and the reversals (1021) it asked for.
    Mixed into TipsLedger."""

    def record_refund_order(self, order: dict) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO refund_orders (tax_org_code, entrust_date, pack_no, msg_id, message)"
                         " VALUES (?, ?, ?, ?, ?)", (order["tax_org_code"], order["entrust_date"], order["pack_no"],
                                                     order["msg_id"], orjson.dumps(order).decode()))

    def set_refund_ack(self, *, tax_org_code: str, entrust_date: str, pack_no: str, result: str, add_word: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE refund_orders SET ack_result = ?, ack_add_word = ? WHERE tax_org_code = ? AND"
                         " entrust_date = ? AND pack_no = ?", (result, add_word, tax_org_code, entrust_date, pack_no))

    def refund_order(self, pack_no: str) -> dict | None:
        with self._read() as conn:
            row = conn.execute("SELECT message FROM refund_orders WHERE pack_no = ? ORDER BY entrust_date DESC",
                               (pack_no,)).fetchone()
        return json.loads(row[0]) if row else None

    def store_refund_result(self, *, msg_id: str, result: dict, reply_for: Callable[[str, str], bytes]) -> bytes:
        """Store a 2104 (deduped on MsgID, then on the order's key: a second result for the same order under
        another MsgID is answered 94051 and not stored). Returns the reply bytes."""
        with self._write() as conn:
            row = conn.execute("SELECT reply FROM received WHERE msg_id = ?", (msg_id,)).fetchone()
            if row is not None:
                conn.execute("UPDATE received SET deliveries = deliveries + 1 WHERE msg_id = ?", (msg_id,))
                return bytes(row[0])
            key = (result["ori_tax_org_code"], result["ori_entrust_date"], result["ori_pack_no"])
            exists = conn.execute("SELECT msg_id FROM refund_results WHERE ori_tax_org_code = ? AND ori_entrust_date = ?"
                                  " AND ori_pack_no = ?", key).fetchone()
            if exists:
                reply = reply_for("94051", f"result of this refund order already received (MsgID {exists[0]})")
            elif not conn.execute("SELECT 1 FROM refund_orders WHERE tax_org_code = ? AND entrust_date = ? AND"
                                  " pack_no = ?", key).fetchone():
                reply = reply_for("24008", "no such refund order was sent")
            else:
                conn.execute(
                    "INSERT INTO refund_results (ori_tax_org_code, ori_entrust_date, ori_pack_no, msg_id, result,"
                    " add_word, all_num, all_amount_fen, succ_num, succ_amount_fen, lines, received_at) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (*key, msg_id, result["result"], result["add_word"], result["all_num"], result["all_amount_fen"],
                     result["succ_num"], result["succ_amount_fen"], orjson.dumps(result["lines"]).decode(),
                     dt.datetime.now(dt.timezone.utc).isoformat()))
                reply = reply_for("90000", "")
            conn.execute("INSERT INTO received (msg_id, msg_no, reply) VALUES (?, '2104', ?)", (msg_id, reply))
            return reply

    def refund_results(self) -> list[dict]:
        return self._stored_results("refund_results")

    def _stored_results(self, table: str) -> list[dict]:
        """The results received (2102 or 2104) in the order they came, their lines decoded."""
        with self._read() as conn:
            conn.row_factory = _dict_row
            try:
                rows = conn.execute(f"SELECT * FROM {table} ORDER BY received_at, ori_pack_no").fetchall()
            finally:
                conn.row_factory = None
        for row in rows:
            row["lines"] = json.loads(row["lines"])
        return rows

    def deduction(self, *, tra_no: str, entrust_date: str = "") -> dict | None:
        """A deduction it sent (the latest entrust date when none is given)."""
        with self._read() as conn:
            conn.row_factory = _dict_row
            try:
                sql = "SELECT * FROM deductions WHERE tra_no = ?" + (" AND entrust_date = ?" if entrust_date else "")
                return conn.execute(sql + " ORDER BY entrust_date DESC",
                                    (tra_no, entrust_date) if entrust_date else (tra_no,)).fetchone()
            finally:
                conn.row_factory = None

    def package(self, pack_no: str) -> dict | None:
        """A package it sent (the latest entrust date)."""
        with self._read() as conn:
            conn.row_factory = _dict_row
            try:
                return conn.execute("SELECT * FROM packages WHERE pack_no = ? ORDER BY entrust_date DESC",
                                    (pack_no,)).fetchone()
            finally:
                conn.row_factory = None

    def store_entry_detail(self, *, msg_id: str, detail: dict, reply_for: Callable[[str, str], bytes]) -> bytes:
        """Store a 3139 package (deduped on MsgID; a package sent again for the same day replaces the one held,
        as the day's entries may have changed). Returns the reply bytes."""
        with self._write() as conn:
            row = conn.execute("SELECT reply FROM received WHERE msg_id = ?", (msg_id,)).fetchone()
            if row is not None:
                conn.execute("UPDATE received SET deliveries = deliveries + 1 WHERE msg_id = ?", (msg_id,))
                return bytes(row[0])
            conn.execute(
                "INSERT OR REPLACE INTO entry_details (tax_org_code, tre_code, in_tre_date, cur_pack_no, child_pack_num,"
                " msg_id, all_num, all_amount_fen, lines, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (detail["tax_org_code"], detail["tre_code"], detail["in_tre_date"], detail["cur_pack_no"],
                 detail["child_pack_num"], msg_id, detail["all_num"], detail["all_amount_fen"],
                 orjson.dumps(detail["lines"]).decode(), dt.datetime.now(dt.timezone.utc).isoformat()))
            reply = reply_for("90000", "")
            conn.execute("INSERT INTO received (msg_id, msg_no, reply) VALUES (?, '3139', ?)", (msg_id, reply))
            return reply

    def entry_details(self) -> list[dict]:
        with self._read() as conn:
            conn.row_factory = _dict_row
            try:
                rows = conn.execute("SELECT * FROM entry_details ORDER BY in_tre_date, tax_org_code, tre_code,"
                                    " cur_pack_no").fetchall()
            finally:
                conn.row_factory = None
        for row in rows:
            row["lines"] = json.loads(row["lines"])
        return rows

    def record_reversal(self, row: dict) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO reversals (tax_org_code, ori_entrust_date, ori_tra_no, cancel_no,"
                         " cancel_date, cancel_answer, result, add_word) VALUES (:tax_org_code, :ori_entrust_date,"
                         " :ori_tra_no, :cancel_no, :cancel_date, :cancel_answer, :result, :add_word)",
                         {"cancel_date": "", **row})


class TipsLedger(SqliteStore, RefundLedger):
    def __init__(self, *, storage_path: str):
        super().__init__(storage_path=storage_path, schema=_SCHEMA)
        with self._write() as conn:  # a file written before reversals kept their own date
            if "cancel_date" not in {row[1] for row in conn.execute("PRAGMA table_info(reversals)")}:
                conn.execute("ALTER TABLE reversals ADD COLUMN cancel_date TEXT NOT NULL DEFAULT ''")

    def next_number(self, name: str) -> str:
        """The next 8-digit number of a series (TraNo, PackNo, VCNo)."""
        with self._write() as conn:
            conn.execute("INSERT INTO counters (name, value) VALUES (?, 1) "
                         "ON CONFLICT (name) DO UPDATE SET value = value + 1", (name,))
            value = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()[0]
        return f"{value:08d}"

    # ----------------------------------------------------------------- what it sends
    def register_agreement(self, a: dict) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO taxpayers (tax_pay_code, tax_pay_name) VALUES (?, ?) "
                         "ON CONFLICT (tax_pay_code) DO UPDATE SET tax_pay_name = excluded.tax_pay_name",
                         (a["tax_pay_code"], a["tax_pay_name"]))
            if conn.execute("SELECT 1 FROM agreements WHERE protocol_no = ?", (a["protocol_no"],)).fetchone():
                conn.execute("UPDATE agreements SET vc_no = ?, state = 'sent' WHERE protocol_no = ?",
                             (a["vc_no"], a["protocol_no"]))
            else:
                conn.execute("INSERT INTO agreements (protocol_no, tax_org_code, tax_pay_code, pay_op_bk_code, pay_bk_code,"
                             " pay_acct, hand_org_name, vc_no, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'sent')",
                             (a["protocol_no"], a["tax_org_code"], a["tax_pay_code"], a["pay_op_bk_code"],
                              a["pay_bk_code"], a["pay_acct"], a["hand_org_name"], a["vc_no"]))

    def set_agreement_answer(self, *, protocol_no: str, state: str, vc_result: str = "", add_word: str = "") -> None:
        with self._write() as conn:
            conn.execute("UPDATE agreements SET state = ?, vc_result = ?, add_word = ? WHERE protocol_no = ?",
                         (state, vc_result, add_word, protocol_no))

    def agreement(self, protocol_no: str) -> dict | None:
        with self._read() as conn:
            conn.row_factory = _dict_row
            try:
                return conn.execute("SELECT a.*, t.tax_pay_name FROM agreements a JOIN taxpayers t USING (tax_pay_code)"
                                    " WHERE protocol_no = ?", (protocol_no,)).fetchone()
            finally:
                conn.row_factory = None

    def record_deductions(self, rows: list[dict]) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO deductions (tax_org_code, entrust_date, tra_no, pack_no, protocol_no, pay_acct,"
                " amount_fen, msg_id) VALUES (:tax_org_code, :entrust_date, :tra_no, :pack_no, :protocol_no, :pay_acct,"
                " :amount_fen, :msg_id)", rows)

    def set_deduction_answer(self, *, tax_org_code: str, entrust_date: str, tra_no: str, result: str, add_word: str,
                             tax_date: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE deductions SET result = ?, add_word = ?, tax_date = ? WHERE tax_org_code = ? AND"
                         " entrust_date = ? AND tra_no = ?", (result, add_word, tax_date, tax_org_code, entrust_date,
                                                              tra_no))

    def record_package(self, p: dict) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO packages (tax_org_code, entrust_date, pack_no, all_num, all_amount_fen,"
                         " msg_id) VALUES (:tax_org_code, :entrust_date, :pack_no, :all_num, :all_amount_fen, :msg_id)", p)

    def set_package_ack(self, *, tax_org_code: str, entrust_date: str, pack_no: str, result: str, add_word: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE packages SET ack_result = ?, ack_add_word = ? WHERE tax_org_code = ? AND entrust_date = ?"
                         " AND pack_no = ?", (result, add_word, tax_org_code, entrust_date, pack_no))

    # ----------------------------------------------------------------- what it receives
    def store_result(self, *, msg_id: str, result: dict, reply_for: Callable[[str, str], bytes]) -> bytes:
        """Store a 2102 (deduped on its package key) and its reply, in one transaction. `reply_for(code, note)`
        writes the signed reply. Returns the reply bytes (the first one, when the MsgID was seen already)."""
        with self._write() as conn:
            row = conn.execute("SELECT reply FROM received WHERE msg_id = ?", (msg_id,)).fetchone()
            if row is not None:
                conn.execute("UPDATE received SET deliveries = deliveries + 1 WHERE msg_id = ?", (msg_id,))
                return bytes(row[0])
            exists = conn.execute("SELECT msg_id FROM results WHERE ori_tax_org_code = ? AND ori_entrust_date = ? AND"
                                  " ori_pack_no = ?", (result["ori_tax_org_code"], result["ori_entrust_date"],
                                                       result["ori_pack_no"])).fetchone()
            if exists:
                reply = reply_for("94051", f"result of this package already received (MsgID {exists[0]})")
            else:
                conn.execute(
                    "INSERT INTO results (ori_tax_org_code, ori_entrust_date, ori_pack_no, msg_id, result, add_word,"
                    " all_num, all_amount_fen, succ_num, succ_amount_fen, lines, received_at) VALUES (?, ?, ?, ?, ?, ?, ?,"
                    " ?, ?, ?, ?, ?)",
                    (result["ori_tax_org_code"], result["ori_entrust_date"], result["ori_pack_no"], msg_id,
                     result["result"], result["add_word"], result["all_num"], result["all_amount_fen"],
                     result["succ_num"], result["succ_amount_fen"], orjson.dumps(result["lines"]).decode(),
                     dt.datetime.now(dt.timezone.utc).isoformat()))
                reply = reply_for("90000", "")
            conn.execute("INSERT INTO received (msg_id, msg_no, reply) VALUES (?, '2102', ?)", (msg_id, reply))
            return reply

    def store_check_result(self, *, msg_id: str, result: dict, reply_for: Callable[[str, str], bytes]) -> bytes:
        """Store a 2111 (deduped on MsgID, then on the check key: a second answer for the same check date, order
        and payee bank saying the same is answered 94051; one saying something else replaces it, as a corrected
        answer after a re-run, and is answered 90000). Returns the reply bytes."""
        with self._write() as conn:
            row = conn.execute("SELECT reply FROM received WHERE msg_id = ?", (msg_id,)).fetchone()
            if row is not None:
                conn.execute("UPDATE received SET deliveries = deliveries + 1 WHERE msg_id = ?", (msg_id,))
                return bytes(row[0])
            key = (result["ori_pay_bank_no"], result["ori_chk_date"], result["ori_chk_acct_ord"],
                   result["ori_payee_bank_no"])
            exists = conn.execute("SELECT msg_id, result, add_word FROM check_replies WHERE ori_pay_bank_no = ? AND"
                                  " ori_chk_date = ? AND ori_chk_acct_ord = ? AND ori_payee_bank_no = ?", key).fetchone()
            if exists and (exists[1], exists[2]) == (result["result"], result["add_word"]):
                reply = reply_for("94051", f"result of this check already received (MsgID {exists[0]})")
            elif exists:
                conn.execute("UPDATE check_replies SET msg_id = ?, result = ?, add_word = ?, received_at = ? WHERE"
                             " ori_pay_bank_no = ? AND ori_chk_date = ? AND ori_chk_acct_ord = ? AND ori_payee_bank_no = ?",
                             (msg_id, result["result"], result["add_word"],
                              dt.datetime.now(dt.timezone.utc).isoformat(), *key))
                reply = reply_for("90000", "更正的对账结果已接收 (corrected answer received)")
            else:
                conn.execute("INSERT INTO check_replies (ori_pay_bank_no, ori_chk_date, ori_chk_acct_ord, ori_payee_bank_no,"
                             " msg_id, result, add_word, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (*key, msg_id, result["result"], result["add_word"],
                              dt.datetime.now(dt.timezone.utc).isoformat()))
                reply = reply_for("90000", "")
            conn.execute("INSERT INTO received (msg_id, msg_no, reply) VALUES (?, '2111', ?)", (msg_id, reply))
            return reply

    def check_results(self) -> list[dict]:
        with self._read() as conn:
            conn.row_factory = _dict_row
            try:
                return conn.execute("SELECT * FROM check_replies ORDER BY received_at").fetchall()
            finally:
                conn.row_factory = None

    def paid_deductions(self, entrust_date: str) -> list[dict]:
        """What the tax system holds as paid on a day, as it stood at the end of that day: the real-time
        deductions answered 90000 and the package items whose 2102 line said 90000, with their agreement's codes
        and taxpayer name; less those reversed (1021 answered 0) that day, not those reversed on a later day."""
        with self._read() as conn:
            conn.row_factory = _dict_row
            try:
                rows = conn.execute(
                    "SELECT d.*, a.pay_op_bk_code, t.tax_pay_name FROM deductions d"
                    " JOIN agreements a ON a.protocol_no = d.protocol_no JOIN taxpayers t USING (tax_pay_code)"
                    " WHERE d.entrust_date = ? AND NOT EXISTS (SELECT 1 FROM reversals v WHERE v.cancel_answer = '0'"
                    " AND v.tax_org_code = d.tax_org_code AND v.ori_entrust_date = d.entrust_date"
                    " AND v.ori_tra_no = d.tra_no AND (v.cancel_date = '' OR v.cancel_date <= d.entrust_date))"
                    " ORDER BY d.tax_org_code, d.tra_no", (entrust_date,)).fetchall()
                results = conn.execute("SELECT ori_tax_org_code, ori_pack_no, lines FROM results"
                                       " WHERE ori_entrust_date = ?", (entrust_date,)).fetchall()
            finally:
                conn.row_factory = None
        paid_in_packages = {(r["ori_tax_org_code"], r["ori_pack_no"], line["ori_tra_no"]): line
                            for r in results for line in json.loads(r["lines"]) if line["result"] == "90000"}
        paid = []
        for row in rows:
            if row["pack_no"]:
                line = paid_in_packages.get((row["tax_org_code"], row["pack_no"], row["tra_no"]))
                if line is None:
                    continue
                row["tax_vou_no"] = line.get("tax_vou_no", "")
            elif row["result"] != "90000":
                continue
            paid.append(row)
        return paid

    def results(self) -> list[dict]:
        return self._stored_results("results")

    def deliveries(self, msg_id: str) -> int:
        with self._read() as conn:
            row = conn.execute("SELECT deliveries FROM received WHERE msg_id = ?", (msg_id,)).fetchone()
        return row[0] if row else 0

    def counts(self) -> dict:
        with self._read() as conn:
            return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # noqa: S608 (fixed names)
                    for table in ("taxpayers", "agreements", "deductions", "packages", "results", "received",
                                  "refund_orders", "refund_results", "reversals")}

    def reset(self) -> None:
        with self._write() as conn:
            for table in ("results", "check_replies", "received", "deductions", "packages", "agreements", "taxpayers",
                          "counters", "refund_orders", "refund_results", "reversals", "entry_details"):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 (fixed names)


def _dict_row(cursor, row) -> dict:
    return {column[0]: value for column, value in zip(cursor.description, row)}
