"""The sandbox tax system's social-insurance desk: it receives employers' declarations (5101) and answers
them (5102: confirmed with a payment voucher number, or refused with a reason), receives payment notices
(5103, answered 9120) and flexible-employment individuals' payment notices (5104, answered 9120), and keeps
its own record of confirmed declarations and their payments, and of the individuals' payments.

Its own tables in its own SQLite file beside the tax ledger (`<storage>.social`), so the desk is attached
to a running sandbox without touching the tax books:

| method and path | what |
| --- | --- |
| `GET /admin/social/declarations` | the declarations it confirmed or refused, with the payments notified |
| `GET /admin/social/flexible-payments` | the flexible-employment payments notified (person's ID, months, amounts) |
| `POST /admin/social/refusals` | `{reason, count}`: refuse the next `count` declarations with `reason` |
| `DELETE /admin/social/refusals` | refuse none |

How it judges a 5101: the same MsgID again gets the first reply byte for byte; a declaration it already
confirmed (same TaxOrgCode and DeclNo) gets the same confirmation again (same voucher); a declaration whose
per-type amounts do not add up to its totals, or one an armed refusal switch catches, is refused (S0001)
and may be declared again after a fix; anything else is confirmed at its AllAmt. A 5104 is recorded once per (TaxOrgCode, PayNo) and answered 90000
(94051 for one it has); one whose premiums and late fees do not add up to TraAmt, or whose months do not count
MonthNum, is refused (92004) and not recorded.
"""
from __future__ import annotations

import datetime as dt
import re
import threading

from adapters.sandbox_common.ledger import SqliteStore
from adapters.tips import messages as m
from adapters.tips.interface import ResultCode, SocialDeclarationReply

_SCHEMA = """
CREATE TABLE IF NOT EXISTS social_declarations (
    tax_org_code TEXT NOT NULL,
    decl_no TEXT NOT NULL,
    payer_code TEXT NOT NULL,
    payer_name TEXT NOT NULL,
    region_code TEXT NOT NULL,
    period TEXT NOT NULL,
    person_num INTEGER NOT NULL,
    all_amount_fen INTEGER NOT NULL,
    state TEXT NOT NULL,  -- confirmed, refused
    vou_no TEXT NOT NULL DEFAULT '',
    add_word TEXT NOT NULL DEFAULT '',
    paid_amount_fen INTEGER,
    pay_acct TEXT NOT NULL DEFAULT '',
    pay_date TEXT NOT NULL DEFAULT '',
    pay_serial TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tax_org_code, decl_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS social_flexible_payments (
    tax_org_code TEXT NOT NULL,
    pay_no TEXT NOT NULL,
    payer_id TEXT NOT NULL,
    payer_name TEXT NOT NULL,
    region_code TEXT NOT NULL,
    start_period TEXT NOT NULL,
    end_period TEXT NOT NULL,
    month_num INTEGER NOT NULL,
    premium_amount_fen INTEGER NOT NULL,
    late_fee_fen INTEGER NOT NULL,
    amount_fen INTEGER NOT NULL,
    pay_acct TEXT NOT NULL,
    pay_date TEXT NOT NULL,
    pay_serial TEXT NOT NULL,
    PRIMARY KEY (tax_org_code, pay_no)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS social_received (
    msg_id TEXT PRIMARY KEY,
    reply BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS social_counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


class SocialLedger(SqliteStore):
    def __init__(self, *, storage_path: str):
        super().__init__(storage_path=storage_path, schema=_SCHEMA)

    def answer_once(self, *, msg_id: str, decide) -> bytes:
        """The reply to a MsgID: the stored one, or `decide(conn)`'s, stored in the same transaction."""
        with self._write() as conn:
            row = conn.execute("SELECT reply FROM social_received WHERE msg_id = ?", (msg_id,)).fetchone()
            if row:
                return bytes(row[0])
            reply = decide(conn)
            conn.execute("INSERT INTO social_received (msg_id, reply) VALUES (?, ?)", (msg_id, reply))
            return reply

    def declarations(self) -> list[dict]:
        with self._read() as conn:
            cursor = conn.execute("SELECT * FROM social_declarations ORDER BY decl_no")
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def flexible_payments(self) -> list[dict]:
        with self._read() as conn:
            cursor = conn.execute("SELECT * FROM social_flexible_payments ORDER BY pay_no")
            names = [c[0] for c in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]

    def reset(self) -> None:
        with self._write() as conn:
            for table in ("social_declarations", "social_flexible_payments", "social_received", "social_counters"):
                conn.execute(f"DELETE FROM {table}")


class SocialDesk:
    """Attached to a TipsSandboxApp (`attach(app, storage_path=...)`): its SOAP messages and admin routes."""

    def __init__(self, *, app, ledger: SocialLedger):
        self.app = app
        self.ledger = ledger
        self._refusals: list[str] = []
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- SOAP
    def receive(self, doc: m.Document, *, bad_signature: bool) -> bytes:
        if doc.head.msg_no == m.SOCIAL_DECLARATION:
            return self.ledger.answer_once(msg_id=doc.head.msg_id,
                                           decide=lambda conn: self._declaration(conn, doc, bad_signature))
        if doc.head.msg_no == m.SOCIAL_FLEXIBLE_PAYMENT:
            return self.ledger.answer_once(msg_id=doc.head.msg_id,
                                           decide=lambda conn: self._flexible_payment(conn, doc, bad_signature))
        return self.ledger.answer_once(msg_id=doc.head.msg_id,
                                       decide=lambda conn: self._payment(conn, doc, bad_signature))

    def _next_refusal(self) -> str | None:
        with self._lock:
            return self._refusals.pop(0) if self._refusals else None

    def _declaration(self, conn, doc: m.Document, bad_signature: bool) -> bytes:
        d = m.read_social_declaration(doc)
        row = conn.execute("SELECT state, vou_no, all_amount_fen FROM social_declarations WHERE tax_org_code = ? "
                           "AND decl_no = ?", (d.tax_org_code, d.decl_no)).fetchone()
        if row and row[0] == "confirmed":
            return self._reply(doc, d, ResultCode.SUCCESS, vou_no=row[1], amount=row[2], note="已确认 (confirmed before)",
                               bad_signature=bad_signature)
        refusal = None
        if (sum(t.employer_amount_fen for t in d.types) != d.employer_amount_fen
                or sum(t.individual_amount_fen for t in d.types) != d.individual_amount_fen
                or d.employer_amount_fen + d.individual_amount_fen != d.all_amount_fen):
            refusal = "分险种金额与合计不符 (per-type amounts do not add up to the totals)"
        refusal = refusal or self._next_refusal()
        if refusal:
            state, vou_no, amount = "refused", "", 0
        else:
            value = conn.execute("INSERT INTO social_counters (name, value) VALUES ('vou_no', 1) ON CONFLICT (name) "
                                 "DO UPDATE SET value = value + 1 RETURNING value").fetchone()[0]
            state, vou_no, amount = "confirmed", f"SI{d.period}{value:010d}", d.all_amount_fen
        conn.execute(
            "INSERT INTO social_declarations (tax_org_code, decl_no, payer_code, payer_name, region_code, period,"
            " person_num, all_amount_fen, state, vou_no, add_word) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (tax_org_code, decl_no) DO UPDATE SET payer_code = excluded.payer_code,"
            " payer_name = excluded.payer_name, region_code = excluded.region_code, period = excluded.period,"
            " person_num = excluded.person_num, all_amount_fen = excluded.all_amount_fen, state = excluded.state,"
            " vou_no = excluded.vou_no, add_word = excluded.add_word",
            (d.tax_org_code, d.decl_no, d.payer_code, d.payer_name, d.region_code, d.period, d.person_num,
             d.all_amount_fen, state, vou_no, refusal or ""))
        if refusal:
            return self._reply(doc, d, ResultCode.DECLARATION_REFUSED, note=refusal, bad_signature=bad_signature)
        return self._reply(doc, d, ResultCode.SUCCESS, vou_no=vou_no, amount=amount, note="",
                           bad_signature=bad_signature)

    def _reply(self, doc: m.Document, d, result: str, *, vou_no: str = "", amount: int = 0, note: str,
               bad_signature: bool) -> bytes:
        head = m.reply_head(doc.head, msg_no=m.SOCIAL_DECLARATION_REPLY, work_date=dt.date.today())
        data = m.social_declaration_reply_document(head=head, reply=SocialDeclarationReply(
            ori_msg_id=doc.head.msg_id, ori_tax_org_code=d.tax_org_code, ori_decl_no=d.decl_no, result=result,
            vou_no=vou_no, confirmed_amount_fen=amount, add_word=note), encoding=self.app.encoding)
        return m.soap_message(self.app._sign(data, bad=bad_signature), response=True)

    def _payment(self, conn, doc: m.Document, bad_signature: bool) -> bytes:
        p = m.read_social_payment(doc)
        row = conn.execute("SELECT state, vou_no, paid_amount_fen FROM social_declarations WHERE tax_org_code = ? "
                           "AND decl_no = ?", (p.tax_org_code, p.decl_no)).fetchone()
        if row is None or row[0] != "confirmed" or row[1] != p.vou_no:
            return self.app._generic(doc, ResultCode.ORIGINAL_NOT_FOUND,
                                     "无此已确认申报或凭证号不符 (no such confirmed declaration and voucher)",
                                     bad_signature=bad_signature)
        if row[2] is not None:
            return self.app._generic(doc, ResultCode.DUPLICATE, "缴费已登记 (payment already recorded)",
                                     bad_signature=bad_signature)
        conn.execute("UPDATE social_declarations SET paid_amount_fen = ?, pay_acct = ?, pay_date = ?, pay_serial = ? "
                     "WHERE tax_org_code = ? AND decl_no = ?",
                     (p.amount_fen, p.pay_acct, m.date_text(p.pay_date), p.pay_serial, p.tax_org_code, p.decl_no))
        return self.app._generic(doc, ResultCode.SUCCESS, "", bad_signature=bad_signature)

    def _flexible_payment(self, conn, doc: m.Document, bad_signature: bool) -> bytes:
        p = m.read_social_flexible_payment(doc)
        months = ((int(p.end_period[:4]) - int(p.start_period[:4])) * 12
                  + int(p.end_period[4:]) - int(p.start_period[4:]) + 1)
        if p.premium_amount_fen + p.late_fee_fen != p.amount_fen or months != p.month_num:
            return self.app._generic(doc, ResultCode.PARSE_ERROR, "金额或月数不符 (amounts or months do not add up)",
                                     bad_signature=bad_signature)
        inserted = conn.execute(
            "INSERT INTO social_flexible_payments (tax_org_code, pay_no, payer_id, payer_name, region_code,"
            " start_period, end_period, month_num, premium_amount_fen, late_fee_fen, amount_fen, pay_acct, pay_date,"
            " pay_serial) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tax_org_code, pay_no) DO NOTHING",
            (p.tax_org_code, p.pay_no, p.payer_id, p.payer_name, p.region_code, p.start_period, p.end_period,
             p.month_num, p.premium_amount_fen, p.late_fee_fen, p.amount_fen, p.pay_acct, m.date_text(p.pay_date),
             p.pay_serial)).rowcount
        if not inserted:
            return self.app._generic(doc, ResultCode.DUPLICATE, "缴费已登记 (payment already recorded)",
                                     bad_signature=bad_signature)
        return self.app._generic(doc, ResultCode.SUCCESS, "", bad_signature=bad_signature)

    # ----------------------------------------------------------------- admin
    def admin_declarations(self, body):
        return 200, {"declarations": self.ledger.declarations()}

    def admin_flexible_payments(self, body):
        return 200, {"payments": self.ledger.flexible_payments()}

    def admin_refuse(self, body):
        reason = str(body.get("reason") or "申报信息有误 (declaration refused)")[:200]
        count = int(body.get("count") or 1)
        with self._lock:
            self._refusals.extend([reason] * count)
        return 200, {"armed": len(self._refusals)}

    def admin_clear_refusals(self, body):
        with self._lock:
            self._refusals.clear()
        return 200, {"armed": 0}


SOCIAL_MESSAGES = (m.SOCIAL_DECLARATION, m.SOCIAL_PAYMENT, m.SOCIAL_FLEXIBLE_PAYMENT)


def attach(app, *, storage_path: str) -> SocialDesk:
    """Give a TipsSandboxApp its social-insurance desk: `app.social`, and the desk's admin routes."""
    desk = app.social = SocialDesk(app=app, ledger=SocialLedger(storage_path=f"{storage_path}.social"))
    app._admin_routes += [
        ("GET", re.compile(r"/admin/social/declarations"), desk.admin_declarations),
        ("GET", re.compile(r"/admin/social/flexible-payments"), desk.admin_flexible_payments),
        ("POST", re.compile(r"/admin/social/refusals"), desk.admin_refuse),
        ("DELETE", re.compile(r"/admin/social/refusals"), desk.admin_clear_refusals),
    ]
    return desk
