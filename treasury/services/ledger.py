"""Ledger invariants, checked set-based in SQL (fast enough for millions of entries)."""
from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from treasury.models import TransferState as S

# Which entry kinds a transfer in each state must have posted (and no others).
EXPECTED_KINDS = {
    S.SETTLED: {"settlement"},
    S.RETURNED: {"settlement", "return"},
    S.REVERSED: {"settlement", "reversal"},
}

PROBLEM_LIMIT = 200


@dataclass
class LedgerReport:
    entries: int = 0
    transfers: int = 0
    accounts: int = 0
    problems: list[str] = field(default_factory=list)


def check_ledger() -> LedgerReport:
    report = LedgerReport()
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*), COUNT(DISTINCT transfer_id), COALESCE(SUM(amount_fen), 0) FROM treasury_ledgerentry")
        report.entries, report.transfers, total = cursor.fetchone()
        cursor.execute("SELECT COUNT(*) FROM treasury_ledgeraccount")
        report.accounts = cursor.fetchone()[0]
        if total != 0:
            report.problems.append(f"all entries together sum to {total} fen, not 0")

        cursor.execute(
            "SELECT transfer_id, kind, SUM(amount_fen), COUNT(*) FROM treasury_ledgerentry "
            "GROUP BY transfer_id, kind HAVING SUM(amount_fen) <> 0 OR COUNT(*) <> 2 "
            f"ORDER BY transfer_id LIMIT {PROBLEM_LIMIT}"
        )
        for transfer_id, kind, amount, count in cursor.fetchall():
            report.problems.append(
                f"transfer {transfer_id}: {kind} posting does not balance ({count} entries summing to {amount} fen)"
            )

        cursor.execute(
            "SELECT a.id, a.code, a.balance_fen, COALESCE(e.total, 0) FROM treasury_ledgeraccount a "
            "LEFT JOIN (SELECT account_id, SUM(amount_fen) AS total FROM treasury_ledgerentry GROUP BY account_id) e "
            "ON e.account_id = a.id WHERE a.balance_fen <> COALESCE(e.total, 0) "
            f"ORDER BY a.id LIMIT {PROBLEM_LIMIT}"
        )
        for account_id, code, balance, total in cursor.fetchall():
            report.problems.append(
                f"account {account_id} ({code}): balance {balance} fen but its entries sum to {total} fen"
            )

        cursor.execute(
            "SELECT t.id, t.state, e.kind, t.amount_fen, e.amount_fen FROM treasury_transfer t "
            "JOIN treasury_ledgerentry e ON e.transfer_id = t.id "
            "WHERE ABS(e.amount_fen) <> t.amount_fen "
            f"ORDER BY t.id LIMIT {PROBLEM_LIMIT}"
        )
        for transfer_id, state, kind, amount, entry_amount in cursor.fetchall():
            report.problems.append(
                f"transfer {transfer_id}: {kind} entry of {entry_amount} fen for a transfer of {amount} fen"
            )

        # Each entry is on the transfer's payer or payee wallet, in its direction: a settlement debits the payer
        # and credits the payee, a return or reversal the other way. Balanced entries on the wrong wallets, or
        # the right ones the wrong way round, pass every sum above.
        cursor.execute(
            "SELECT t.id, e.kind, e.id, e.account_id, e.amount_fen FROM treasury_ledgerentry e "
            "JOIN treasury_transfer t ON t.id = e.transfer_id JOIN treasury_ledgeraccount a ON a.id = e.account_id "
            "WHERE NOT COALESCE((a.wallet_id = t.payer_id AND e.amount_fen = "
            "CASE WHEN e.kind = 'settlement' THEN -t.amount_fen ELSE t.amount_fen END) "
            "OR (a.wallet_id = t.payee_id AND e.amount_fen = "
            "CASE WHEN e.kind = 'settlement' THEN t.amount_fen ELSE -t.amount_fen END), FALSE) "
            f"ORDER BY t.id, e.id LIMIT {PROBLEM_LIMIT}"
        )
        for transfer_id, kind, entry_id, account_id, amount in cursor.fetchall():
            report.problems.append(
                f"transfer {transfer_id}: {kind} entry {entry_id} of {amount} fen on account {account_id} is not "
                "the payer's or the payee's side of it"
            )

        # Entries and outbox rows have no foreign-key constraints (migration 0005), nor have transfers to
        # the wallets, organizations and content types they name (0009): each must name a row that exists.
        cursor.execute(
            "SELECT 'transfer', t.id, 'wallet', t.payer_id FROM treasury_transfer t "
            "WHERE NOT EXISTS (SELECT 1 FROM treasury_wallet w WHERE w.id = t.payer_id) "
            "UNION ALL SELECT 'transfer', t.id, 'wallet', t.payee_id FROM treasury_transfer t "
            "WHERE NOT EXISTS (SELECT 1 FROM treasury_wallet w WHERE w.id = t.payee_id) "
            "UNION ALL SELECT 'transfer', t.id, 'organization', t.organization_id FROM treasury_transfer t "
            "WHERE NOT EXISTS (SELECT 1 FROM treasury_organization o WHERE o.id = t.organization_id) "
            "UNION ALL SELECT 'transfer', t.id, 'content type', t.source_type_id FROM treasury_transfer t "
            "WHERE t.source_type_id IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM django_content_type c WHERE c.id = t.source_type_id) "
            "UNION ALL SELECT 'entry', e.id, 'transfer', e.transfer_id FROM treasury_ledgerentry e "
            "WHERE NOT EXISTS (SELECT 1 FROM treasury_transfer t WHERE t.id = e.transfer_id) "
            "UNION ALL SELECT 'entry', e.id, 'account', e.account_id FROM treasury_ledgerentry e "
            "WHERE NOT EXISTS (SELECT 1 FROM treasury_ledgeraccount a WHERE a.id = e.account_id) "
            "UNION ALL SELECT 'outbox row', o.transfer_id, 'transfer', o.transfer_id FROM treasury_transferoutbox o "
            "WHERE NOT EXISTS (SELECT 1 FROM treasury_transfer t WHERE t.id = o.transfer_id) "
            f"ORDER BY 1, 2 LIMIT {PROBLEM_LIMIT}"
        )
        for what, pk, missing, missing_pk in cursor.fetchall():
            report.problems.append(f"{what} {pk} names {missing} {missing_pk}, which does not exist")

        # The outbox holds exactly the open transfers: one missing would never be submitted or recovered.
        cursor.execute(
            "SELECT t.id, t.state, o.transfer_id IS NOT NULL FROM treasury_transfer t "
            "LEFT JOIN treasury_transferoutbox o ON o.transfer_id = t.id "
            "WHERE (t.state IN ('pending', 'submitted', 'unknown')) <> (o.transfer_id IS NOT NULL) "
            f"ORDER BY t.id LIMIT {PROBLEM_LIMIT}"
        )
        for transfer_id, state, in_outbox in cursor.fetchall():
            where = "is in the outbox" if in_outbox else "is missing from the outbox"
            report.problems.append(f"transfer {transfer_id} is {state} but {where}")

        # Every transfer has exactly the postings its state calls for.
        cursor.execute(
            "SELECT t.id, t.state, e.kind FROM treasury_transfer t "
            "LEFT JOIN (SELECT DISTINCT transfer_id, kind FROM treasury_ledgerentry) e ON e.transfer_id = t.id "
            "WHERE (t.state IN ('settled', 'returned', 'reversed')) OR e.kind IS NOT NULL ORDER BY t.id"
        )
        kinds_by_transfer: dict[int, tuple[str, set]] = {}
        for transfer_id, state, kind in cursor.fetchall():
            entry = kinds_by_transfer.setdefault(transfer_id, (state, set()))
            if kind:
                entry[1].add(kind)
        for transfer_id, (state, kinds) in kinds_by_transfer.items():
            expected = EXPECTED_KINDS.get(state, set())
            if kinds != expected:
                report.problems.append(
                    f"transfer {transfer_id} is {state} but has postings {sorted(kinds) or 'none'}; "
                    f"expected {sorted(expected) or 'none'}"
                )
                if len(report.problems) >= PROBLEM_LIMIT:
                    break
    return report
