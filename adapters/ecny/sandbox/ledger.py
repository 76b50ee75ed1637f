"""The sandbox operator's own ledger: wallets, balances, request dedupe and bookings in SQLite.

This is the operator's side of the world, not the service's: it keeps its storage in its own
SQLite file through the stdlib `sqlite3` module and knows nothing of the Django ORM.

Concurrency: every write runs under one process-wide lock inside `BEGIN IMMEDIATE`, so a batch is
applied atomically (one transaction, `executemany`) and two requests carrying the same request id
can never both be applied, whichever thread or process they arrive on. `request_id` is also
UNIQUE in the table as a last line of defence.

Clock: the operator reads its own clock (`clock`, UTC aware); tests may pin it through the admin
API so that daily limits and statements do not depend on the hour the suite runs.
"""
from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from adapters.ecny.interface import Conditions, RefusalCode, TransferInstruction, TransferStatus
from adapters.sandbox_common.ledger import SqliteStore, chunks
from treasury.money import format_yuan

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
PERSONAL_TYPES = ("WT01", "WT02", "WT03")  # personal wallet, personal sub-wallet, hardware wallet
CORPORATE_TYPES = ("WT09", "WT10")  # corporate wallet, corporate sub-wallet
WALLET_TYPES = PERSONAL_TYPES + CORPORATE_TYPES
WALLET_STATUSES = ("active", "frozen", "closed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS wallets (
    wallet_id TEXT PRIMARY KEY,
    wallet_type TEXT NOT NULL,
    wallet_class INTEGER,
    holder_name TEXT NOT NULL,
    status TEXT NOT NULL,
    balance_fen INTEGER NOT NULL CHECK (balance_fen >= 0),
    opened_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    operator_txn_id TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    settled_at TEXT,
    payer_wallet TEXT NOT NULL,
    payee_wallet TEXT NOT NULL,
    amount_fen INTEGER NOT NULL,
    purpose_code TEXT NOT NULL,
    memo TEXT NOT NULL,
    original_request_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    later_status TEXT,
    later_reason TEXT,
    changed_at TEXT
);
CREATE TABLE IF NOT EXISTS bookings (
    id INTEGER PRIMARY KEY,
    wallet_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    booked_at TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('debit', 'credit')),
    counterparty_wallet TEXT NOT NULL,
    amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
    kind TEXT NOT NULL,
    operator_txn_id TEXT NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bookings_wallet_date ON bookings (wallet_id, business_date);
CREATE TABLE IF NOT EXISTS daily_payments (
    wallet_id TEXT NOT NULL,
    business_date TEXT NOT NULL,
    paid_fen INTEGER NOT NULL,
    PRIMARY KEY (wallet_id, business_date)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

# The reply as first given (replayed for a repeated request id) ...
_REPLY_COLUMNS = "request_id, status, operator_txn_id, code, message, settled_at"
# ... and what the operator knows now (query): returned or reversed since, with the reason.
_CURRENT_COLUMNS = ("request_id, COALESCE(later_status, status), operator_txn_id, code,"
                    " COALESCE(later_reason, message), settled_at")


class SandboxError(Exception):
    """An admin or read request the sandbox refuses as a whole; `http_status` says how."""

    def __init__(self, message: str, *, code: str, http_status: int = 409):
        super().__init__(message)
        self.code = code
        self.http_status = http_status


def business_date(moment: dt.datetime) -> dt.date:
    """The operator's business day of a moment: the calendar day in Asia/Shanghai."""
    return moment.astimezone(BUSINESS_TZ).date()


def normalize_limits(limits: dict) -> dict[int, dict[str, int | None]]:
    """settings.WALLET_CLASS_LIMITS shape (keys may arrive as strings from JSON) -> {class: limits}."""
    normalized = {}
    for wallet_class, values in (limits or {}).items():
        normalized[int(wallet_class)] = {
            name: (None if values.get(name) is None else int(values[name]))
            for name in ("balance_cap_fen", "single_fen", "daily_fen")
        }
    return normalized


def _result(request_id, status, operator_txn_id="", code="", message="", settled_at=None) -> dict:
    return {
        "request_id": request_id,
        "status": status,
        "operator_txn_id": operator_txn_id,
        "code": code,
        "message": message,
        "settled_at": settled_at,
    }


class SandboxLedger(SqliteStore):
    """The operator's books. Thread-safe; one instance per storage file per process."""

    def __init__(self, *, storage_path: str, limits: dict, clock: Callable[[], dt.datetime] | None = None):
        self._limits = normalize_limits(limits)
        self._clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self._pinned_now: dt.datetime | None = None
        super().__init__(storage_path=storage_path, schema=_SCHEMA)

    # ----------------------------------------------------------------- plumbing
    def now(self) -> dt.datetime:
        return self._pinned_now or self._clock()

    def pin_clock(self, *, at: dt.datetime | None) -> None:
        """Fix the operator's clock at `at` (aware), or let it run again with None."""
        if at is not None and at.tzinfo is None:
            raise SandboxError("clock must be timezone-aware", code="INVALID_REQUEST", http_status=400)
        self._pinned_now = at

    @staticmethod
    def _next_txn_ids(conn: sqlite3.Connection, count: int) -> Iterable[str]:
        """Allocate `count` operator transaction ids inside the current transaction."""
        row = conn.execute("SELECT value FROM counters WHERE name = 'txn'").fetchone()
        first = (row[0] if row else 0) + 1
        conn.execute(
            "INSERT INTO counters (name, value) VALUES ('txn', ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (first + count - 1,),
        )
        return (f"EC{n:014d}" for n in range(first, first + count))

    @staticmethod
    def _load_results(conn: sqlite3.Connection, request_ids: list[str], *, current: bool = False) -> dict[str, dict]:
        """request_id -> result: the reply as first given, or with `current` what is true now."""
        columns = _CURRENT_COLUMNS if current else _REPLY_COLUMNS
        found = {}
        for chunk in chunks(request_ids):
            marks = ",".join("?" * len(chunk))
            for row in conn.execute(f"SELECT {columns} FROM requests WHERE request_id IN ({marks})", chunk):
                found[row[0]] = _result(*row)
        return found

    @staticmethod
    def _load_wallets(conn: sqlite3.Connection, wallet_ids: list[str]) -> dict[str, list]:
        """wallet_id -> [wallet_type, wallet_class, status, balance_fen] (mutable, for the batch)."""
        found = {}
        for chunk in chunks(wallet_ids):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT wallet_id, wallet_type, wallet_class, status, balance_fen FROM wallets WHERE wallet_id IN ({marks})"
            for wallet_id, wallet_type, wallet_class, status, balance in conn.execute(sql, chunk):
                found[wallet_id] = [wallet_type, wallet_class, status, balance]
        return found

    # ----------------------------------------------------------------- money calls
    def transfer_batch(self, instructions: list[TransferInstruction]) -> list[dict]:
        """Apply each instruction at most once per request id, all in one transaction.

        Returns one result dict per instruction, same order, each with `duplicate` True when the
        request id had been seen before (earlier call or earlier in this batch).
        """
        with self._write() as conn:
            now = self.now()
            now_text = now.astimezone(dt.timezone.utc).isoformat()
            day = business_date(now).isoformat()
            known = self._load_results(conn, list({ins.request_id for ins in instructions}))
            fresh = [ins for ins in instructions if ins.request_id not in known]
            wallets = self._load_wallets(conn, list({w for ins in fresh for w in (ins.payer_wallet, ins.payee_wallet)}))
            paid_today = self._load_paid_today(conn, wallets, day)
            txn_ids = self._next_txn_ids(conn, len(fresh)) if fresh else iter(())

            results, request_rows, booking_rows = [], [], []
            touched_wallets, touched_payers = set(), set()
            for ins in instructions:
                previous = known.get(ins.request_id)
                if previous is not None:
                    results.append({**previous, "duplicate": True})
                    continue
                code, message = self._refusal(ins, wallets, paid_today, now)
                if code:
                    result = _result(ins.request_id, TransferStatus.FAILED, "", code, message, None)
                else:
                    txn_id = next(txn_ids)
                    payer, payee = wallets[ins.payer_wallet], wallets[ins.payee_wallet]
                    payer[3] -= ins.amount_fen
                    payee[3] += ins.amount_fen
                    paid_today[ins.payer_wallet] = paid_today.get(ins.payer_wallet, 0) + ins.amount_fen
                    touched_wallets.add(ins.payer_wallet)
                    touched_wallets.add(ins.payee_wallet)
                    touched_payers.add(ins.payer_wallet)
                    booking_rows.append((ins.payer_wallet, day, now_text, "debit", ins.payee_wallet, ins.amount_fen,
                                         "transfer", txn_id, ins.request_id))
                    booking_rows.append((ins.payee_wallet, day, now_text, "credit", ins.payer_wallet, ins.amount_fen,
                                         "transfer", txn_id, ins.request_id))
                    result = _result(ins.request_id, TransferStatus.SETTLED, txn_id, "", "", now_text)
                request_rows.append((ins.request_id, "transfer", result["status"], result["operator_txn_id"],
                                     result["code"], result["message"], result["settled_at"], ins.payer_wallet,
                                     ins.payee_wallet, ins.amount_fen, ins.purpose_code, ins.memo, "", now_text))
                known[ins.request_id] = result
                results.append({**result, "duplicate": False})

            self._insert_requests(conn, request_rows)
            self._insert_bookings(conn, booking_rows)
            conn.executemany("UPDATE wallets SET balance_fen = ? WHERE wallet_id = ?",
                             [(wallets[w][3], w) for w in touched_wallets])
            conn.executemany(
                "INSERT INTO daily_payments (wallet_id, business_date, paid_fen) VALUES (?, ?, ?) "
                "ON CONFLICT (wallet_id, business_date) DO UPDATE SET paid_fen = excluded.paid_fen",
                [(w, day, paid_today[w]) for w in touched_payers],
            )
        return results

    @staticmethod
    def _insert_requests(conn, rows):
        conn.executemany(
            "INSERT INTO requests (request_id, kind, status, operator_txn_id, code, message, settled_at, payer_wallet,"
            " payee_wallet, amount_fen, purpose_code, memo, original_request_id, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    @staticmethod
    def _insert_bookings(conn, rows):
        conn.executemany(
            "INSERT INTO bookings (wallet_id, business_date, booked_at, direction, counterparty_wallet, amount_fen,"
            " kind, operator_txn_id, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _load_paid_today(self, conn, wallets: dict[str, list], day: str) -> dict[str, int]:
        limited = [w for w, (wtype, wclass, _s, _b) in wallets.items()
                   if wtype in PERSONAL_TYPES and (self._limits.get(wclass) or {}).get("daily_fen") is not None]
        paid = {}
        for chunk in chunks(limited):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT wallet_id, paid_fen FROM daily_payments WHERE business_date = ? AND wallet_id IN ({marks})"
            paid.update(conn.execute(sql, [day, *chunk]).fetchall())
        return paid

    def _refusal(self, ins: TransferInstruction, wallets, paid_today, now) -> tuple[str, str]:
        """('', '') when the instruction may be applied, else (RefusalCode, clerk-readable message).

        Checked in this order: request, wallets, smart-contract conditions, payer limits,
        balance, payee cap; the first failing check names the refusal.
        """
        amount = ins.amount_fen
        if amount <= 0:
            return RefusalCode.INVALID_REQUEST, "金额必须大于零 (amount must be positive)"
        if ins.payer_wallet == ins.payee_wallet:
            return RefusalCode.INVALID_REQUEST, "付款钱包与收款钱包相同 (payer and payee are the same wallet)"
        payer = wallets.get(ins.payer_wallet)
        payee = wallets.get(ins.payee_wallet)
        if payer is None:
            return RefusalCode.WALLET_NOT_FOUND, "付款钱包不存在 (payer wallet not found)"
        if payee is None:
            return RefusalCode.WALLET_NOT_FOUND, "收款钱包不存在 (payee wallet not found)"
        if payer[2] != "active":
            return RefusalCode.WALLET_INACTIVE, f"付款钱包状态异常 (payer wallet is {payer[2]})"
        if payee[2] != "active":
            return RefusalCode.WALLET_INACTIVE, f"收款钱包状态异常 (payee wallet is {payee[2]})"
        conditions = ins.conditions
        if not conditions.is_empty():
            refusal = self._condition_refusal(conditions, ins, payee, now)
            if refusal:
                return refusal
        if payer[0] in PERSONAL_TYPES:
            limits = self._limits.get(payer[1]) or {}
            single = limits.get("single_fen")
            if single is not None and amount > single:
                return (RefusalCode.SINGLE_LIMIT_EXCEEDED,
                        f"超过{payer[1]}类钱包单笔支付限额 (class {payer[1]} single payment limit {format_yuan(single)})")
            daily = limits.get("daily_fen")
            if daily is not None and paid_today.get(ins.payer_wallet, 0) + amount > daily:
                return (RefusalCode.DAILY_LIMIT_EXCEEDED,
                        f"超过{payer[1]}类钱包日累计支付限额 (class {payer[1]} daily payment limit {format_yuan(daily)})")
        if payer[3] < amount:
            return RefusalCode.INSUFFICIENT_BALANCE, "付款钱包余额不足 (insufficient balance in payer wallet)"
        if payee[0] in PERSONAL_TYPES:
            cap = (self._limits.get(payee[1]) or {}).get("balance_cap_fen")
            if cap is not None and payee[3] + amount > cap:
                return (RefusalCode.BALANCE_CAP_EXCEEDED,
                        f"收款钱包余额将超过{payee[1]}类钱包余额上限 (class {payee[1]} balance cap {format_yuan(cap)})")
        return "", ""

    @staticmethod
    def _condition_refusal(conditions: Conditions, ins: TransferInstruction, payee, now) -> tuple[str, str] | None:
        if conditions.expires_at is not None and now >= conditions.expires_at:
            return (RefusalCode.CONDITION_EXPIRED,
                    f"智能合约已过期 (smart contract expired at {conditions.expires_at.isoformat()})")
        if conditions.allowed_payees and ins.payee_wallet not in conditions.allowed_payees:
            return RefusalCode.CONDITION_PAYEE_NOT_ALLOWED, "收款钱包不在智能合约允许名单内 (payee not allowed by the smart contract)"
        if conditions.payee_category and payee[0] != conditions.payee_category:
            return (RefusalCode.CONDITION_PAYEE_CATEGORY,
                    f"收款钱包类型不符合智能合约 (smart contract requires payee type {conditions.payee_category}, got {payee[0]})")
        if conditions.purposes and ins.purpose_code not in conditions.purposes:
            return (RefusalCode.CONDITION_PURPOSE,
                    f"用途不符合智能合约 (purpose {ins.purpose_code or '(none)'} not allowed by the smart contract)")
        return None

    def reverse(self, *, request_id: str, original_request_id: str, reason: str) -> dict:
        """Reverse (冲正) a settled transfer under the reversal's own request id, at most once.

        The money goes back from the payee to the payer regardless of wallet status and class
        limits (a correction, not a payment), but never drives the payee's balance below zero.
        """
        with self._write() as conn:
            now = self.now()
            now_text = now.astimezone(dt.timezone.utc).isoformat()
            day = business_date(now).isoformat()
            previous = self._load_results(conn, [request_id]).get(request_id)
            if previous is not None:
                return {**previous, "duplicate": True}
            original = conn.execute(
                "SELECT kind, COALESCE(later_status, status), payer_wallet, payee_wallet, amount_fen FROM requests"
                " WHERE request_id = ?",
                (original_request_id,),
            ).fetchone()
            payer = payee = None
            code = message = ""
            if original is None or original[0] != "transfer" or original[1] != TransferStatus.SETTLED:
                state = "unknown" if original is None else (original[1] if original[0] == "transfer" else original[0])
                code, message = RefusalCode.NOT_REVERSIBLE, f"原交易不可冲正 (original request is {state}, not a settled transfer)"
            else:
                _kind, _status, payer, payee, amount = original
                payee_balance = conn.execute("SELECT balance_fen FROM wallets WHERE wallet_id = ?", (payee,)).fetchone()[0]
                if payee_balance < amount:
                    code, message = RefusalCode.INSUFFICIENT_BALANCE, "收款钱包余额不足以冲正 (payee balance too low to reverse)"
            if code:
                result = _result(request_id, TransferStatus.FAILED, "", code, message, None)
                self._insert_requests(conn, [(request_id, "reversal", result["status"], "", code, message, None,
                                              payer or "", payee or "", 0, "", reason, original_request_id, now_text)])
                return {**result, "duplicate": False}
            (txn_id,) = self._next_txn_ids(conn, 1)
            self._move_back(conn, payer=payer, payee=payee, amount=amount, kind="reversal", txn_id=txn_id,
                            request_id=request_id, day=day, now_text=now_text)
            conn.execute("UPDATE requests SET later_status = ?, later_reason = ?, changed_at = ? WHERE request_id = ?",
                         (TransferStatus.REVERSED, reason, now_text, original_request_id))
            result = _result(request_id, TransferStatus.SETTLED, txn_id, "", "", now_text)
            # The reversal's own row runs from the original payee back to the original payer.
            self._insert_requests(conn, [(request_id, "reversal", result["status"], txn_id, "", "", now_text, payee,
                                          payer, amount, "", reason, original_request_id, now_text)])
            return {**result, "duplicate": False}

    def _move_back(self, conn, *, payer, payee, amount, kind, txn_id, request_id, day, now_text):
        conn.execute("UPDATE wallets SET balance_fen = balance_fen - ? WHERE wallet_id = ?", (amount, payee))
        conn.execute("UPDATE wallets SET balance_fen = balance_fen + ? WHERE wallet_id = ?", (amount, payer))
        self._insert_bookings(conn, [
            (payee, day, now_text, "debit", payer, amount, kind, txn_id, request_id),
            (payer, day, now_text, "credit", payee, amount, kind, txn_id, request_id),
        ])

    # ----------------------------------------------------------------- reads
    def query(self, request_ids: list[str]) -> list[dict]:
        with self._read() as conn:
            found = self._load_results(conn, list(set(request_ids)), current=True)
        return [found.get(rid) or _result(rid, TransferStatus.NOT_FOUND) for rid in request_ids]

    def verify_wallets(self, items: list[tuple[str, str]]) -> list[dict]:
        with self._read() as conn:
            rows = {}
            ids = list({wallet_id for wallet_id, _name in items})
            for chunk in chunks(ids):
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT wallet_id, wallet_type, wallet_class, status, holder_name FROM wallets WHERE wallet_id IN ({marks})"
                rows.update({row[0]: row for row in conn.execute(sql, chunk)})
        results = []
        for wallet_id, holder_name in items:
            row = rows.get(wallet_id)
            if row is None:
                results.append({"wallet_id": wallet_id, "exists": False, "active": False, "holder_name_matches": False,
                                 "wallet_type": "", "wallet_class": None})
                continue
            results.append({
                "wallet_id": wallet_id,
                "exists": True,
                "active": row[3] == "active",
                "holder_name_matches": "".join(str(holder_name).split()) == "".join(row[4].split()),
                "wallet_type": row[1],
                "wallet_class": row[2],
            })
        return results

    def statement(self, *, wallet_id: str, day: dt.date) -> list[dict]:
        with self._read() as conn:
            if conn.execute("SELECT 1 FROM wallets WHERE wallet_id = ?", (wallet_id,)).fetchone() is None:
                raise SandboxError("钱包不存在 (wallet not found)", code=RefusalCode.WALLET_NOT_FOUND, http_status=404)
            rows = conn.execute(
                "SELECT operator_txn_id, request_id, booked_at, direction, counterparty_wallet, amount_fen, kind"
                " FROM bookings WHERE wallet_id = ? AND business_date = ? ORDER BY id",
                (wallet_id, day.isoformat()),
            ).fetchall()
        keys = ("operator_txn_id", "request_id", "booked_at", "direction", "counterparty_wallet", "amount_fen", "kind")
        return [dict(zip(keys, row)) for row in rows]

    # ----------------------------------------------------------------- admin
    def open_wallet(self, *, wallet_id: str, wallet_type: str, wallet_class: int | None, holder_name: str) -> dict:
        """Open one active, empty wallet. Raises SandboxError (400 bad fields, 409 already exists)."""
        self.open_wallets([{"wallet_id": wallet_id, "wallet_type": wallet_type, "wallet_class": wallet_class,
                            "holder_name": holder_name}])
        return self.wallet(wallet_id=wallet_id)

    def _check_new_wallet(self, item) -> tuple:
        if not isinstance(item, dict):
            raise SandboxError("each wallet must be an object", code="INVALID_REQUEST", http_status=400)
        wallet_id, wallet_type = item.get("wallet_id"), item.get("wallet_type")
        wallet_class, holder_name = item.get("wallet_class"), item.get("holder_name")
        balance = item.get("balance_fen") or 0
        if not (isinstance(wallet_id, str) and len(wallet_id) == 16 and wallet_id.isdigit() and wallet_id.isascii()):
            raise SandboxError("钱包编号应为16位数字 (wallet id must be 16 digits)", code="INVALID_REQUEST", http_status=400)
        if wallet_type not in WALLET_TYPES:
            raise SandboxError(f"unknown wallet type {wallet_type!r}; one of {', '.join(WALLET_TYPES)}",
                               code="INVALID_REQUEST", http_status=400)
        if wallet_type in PERSONAL_TYPES and (type(wallet_class) is not int or wallet_class not in self._limits):
            raise SandboxError(f"personal wallets need a class among {sorted(self._limits)}", code="INVALID_REQUEST",
                               http_status=400)
        if wallet_type in CORPORATE_TYPES and wallet_class is not None:
            raise SandboxError("corporate wallets have no class", code="INVALID_REQUEST", http_status=400)
        if not isinstance(holder_name, str) or not holder_name.strip():
            raise SandboxError("holder name is required", code="INVALID_REQUEST", http_status=400)
        if type(balance) is not int or balance < 0:
            raise SandboxError("balance_fen must be an integer >= 0", code="INVALID_REQUEST", http_status=400)
        cap = (self._limits.get(wallet_class) or {}).get("balance_cap_fen") if wallet_type in PERSONAL_TYPES else None
        if cap is not None and balance > cap:
            raise SandboxError(f"余额将超过上限 (balance cap {format_yuan(cap)})", code=RefusalCode.BALANCE_CAP_EXCEEDED)
        return wallet_id, wallet_type, wallet_class, holder_name.strip(), balance

    def open_wallets(self, items: list[dict]) -> int:
        """Open many active wallets in one transaction (all or none); `balance_fen` on an item
        funds it from issuance. Returns how many were opened. Raises SandboxError."""
        rows = [self._check_new_wallet(item) for item in items]
        now = self.now()
        now_text = now.astimezone(dt.timezone.utc).isoformat()
        day = business_date(now).isoformat()
        with self._write() as conn:
            try:
                conn.executemany(
                    "INSERT INTO wallets (wallet_id, wallet_type, wallet_class, holder_name, status, balance_fen, opened_at)"
                    " VALUES (?, ?, ?, ?, 'active', ?, ?)",
                    [(*row, now_text) for row in rows],
                )
            except sqlite3.IntegrityError:
                raise SandboxError("钱包已存在 (wallet already exists)", code="WALLET_EXISTS")
            funded = [row for row in rows if row[4] > 0]
            if funded:
                txn_ids = self._next_txn_ids(conn, len(funded))
                self._insert_bookings(conn, [(row[0], day, now_text, "credit", "", row[4], "funding", txn_id, "")
                                             for row, txn_id in zip(funded, txn_ids)])
        return len(rows)

    def next_wallet_id(self, *, operator_code: str) -> str:
        """A free wallet id for an operator code (3 digits)."""
        if not (len(operator_code) == 3 and operator_code.isdigit() and operator_code.isascii()):
            raise SandboxError("operator code must be 3 digits", code="INVALID_REQUEST", http_status=400)
        with self._write() as conn:
            name = f"wallet:{operator_code}"
            row = conn.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
            number = (row[0] if row else 0) + 1
            conn.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, number))
        return f"{operator_code}{number:013d}"

    def wallet(self, *, wallet_id: str) -> dict:
        with self._read() as conn:
            row = conn.execute(
                "SELECT wallet_id, wallet_type, wallet_class, holder_name, status, balance_fen, opened_at"
                " FROM wallets WHERE wallet_id = ?", (wallet_id,),
            ).fetchone()
        if row is None:
            raise SandboxError("钱包不存在 (wallet not found)", code=RefusalCode.WALLET_NOT_FOUND, http_status=404)
        keys = ("wallet_id", "wallet_type", "wallet_class", "holder_name", "status", "balance_fen", "opened_at")
        return dict(zip(keys, row))

    def fund(self, *, wallet_id: str, amount_fen: int) -> dict:
        """Money from issuance into a wallet (the demo's and tests' way to give payers money)."""
        if type(amount_fen) is not int or amount_fen <= 0:
            raise SandboxError("amount_fen must be a positive integer", code="INVALID_REQUEST", http_status=400)
        with self._write() as conn:
            wallets = self._load_wallets(conn, [wallet_id])
            if wallet_id not in wallets:
                raise SandboxError("钱包不存在 (wallet not found)", code=RefusalCode.WALLET_NOT_FOUND, http_status=404)
            wallet_type, wallet_class, status, balance = wallets[wallet_id]
            if status != "active":
                raise SandboxError(f"钱包状态异常 (wallet is {status})", code=RefusalCode.WALLET_INACTIVE)
            cap = (self._limits.get(wallet_class) or {}).get("balance_cap_fen") if wallet_type in PERSONAL_TYPES else None
            if cap is not None and balance + amount_fen > cap:
                raise SandboxError(f"余额将超过上限 (balance cap {format_yuan(cap)})", code=RefusalCode.BALANCE_CAP_EXCEEDED)
            now = self.now()
            (txn_id,) = self._next_txn_ids(conn, 1)
            conn.execute("UPDATE wallets SET balance_fen = balance_fen + ? WHERE wallet_id = ?", (amount_fen, wallet_id))
            self._insert_bookings(conn, [(wallet_id, business_date(now).isoformat(),
                                          now.astimezone(dt.timezone.utc).isoformat(), "credit", "", amount_fen,
                                          "funding", txn_id, "")])
        return self.wallet(wallet_id=wallet_id)

    def set_status(self, *, wallet_id: str, status: str) -> dict:
        if status not in WALLET_STATUSES:
            raise SandboxError(f"status must be one of {', '.join(WALLET_STATUSES)}", code="INVALID_REQUEST",
                               http_status=400)
        with self._write() as conn:
            if conn.execute("UPDATE wallets SET status = ? WHERE wallet_id = ?", (status, wallet_id)).rowcount == 0:
                raise SandboxError("钱包不存在 (wallet not found)", code=RefusalCode.WALLET_NOT_FOUND, http_status=404)
        return self.wallet(wallet_id=wallet_id)

    def return_transfer(self, *, request_id: str, reason: str) -> dict:
        """The money of a settled transfer comes back to the payer (退回, e.g. payee wallet closed).

        Afterwards `query` answers RETURNED with the reason as message.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT kind, COALESCE(later_status, status), payer_wallet, payee_wallet, amount_fen FROM requests"
                " WHERE request_id = ?",
                (request_id,),
            ).fetchone()
            if row is None:
                raise SandboxError("交易不存在 (request id not found)", code="NOT_FOUND", http_status=404)
            kind, status, payer, payee, amount = row
            if kind != "transfer" or status != TransferStatus.SETTLED:
                raise SandboxError(f"只能退回已结算的转账 (only a settled transfer can be returned; this one is {status})",
                                   code="NOT_RETURNABLE")
            balance = conn.execute("SELECT balance_fen FROM wallets WHERE wallet_id = ?", (payee,)).fetchone()[0]
            if balance < amount:
                raise SandboxError("收款钱包余额不足以退回 (payee balance too low to return)", code="NOT_RETURNABLE")
            now = self.now()
            now_text = now.astimezone(dt.timezone.utc).isoformat()
            (txn_id,) = self._next_txn_ids(conn, 1)
            self._move_back(conn, payer=payer, payee=payee, amount=amount, kind="return", txn_id=txn_id,
                            request_id=request_id, day=business_date(now).isoformat(), now_text=now_text)
            conn.execute("UPDATE requests SET later_status = ?, later_reason = ?, changed_at = ? WHERE request_id = ?",
                         (TransferStatus.RETURNED, reason, now_text, request_id))
        return self.query([request_id])[0]

    def reset(self) -> None:
        """Forget everything: wallets, requests, bookings, counters."""
        with self._write() as conn:
            for table in ("wallets", "requests", "bookings", "daily_payments", "counters"):
                conn.execute(f"DELETE FROM {table}")
        self._pinned_now = None
