"""The transfer core: the one way domain code moves e-CNY.

Domain code calls `create_transfers` inside its own transaction (the transactional outbox): the
transfers are rows in state `pending`, and after commit one Celery task per chunk submits them
to the operator in one batch call (`submit_transfer_chunk`). The operator dedupes on each
transfer's idempotency key, so a chunk sent twice is applied once. A caller that sends its transfers
itself right after commit (a tax package's task) creates them already claimed (`claimed=True`, then
`send_claimed_transfers`): one statement and one trace event fewer per transfer.

Outcomes:
- the operator answers: settled rows get their postings and trace events in one transaction;
  failed rows record the operator's reason;
- the call times out, fails, or the worker dies: rows stay `submitted` or become `unknown`, and
  `recover_unconfirmed_transfers` asks the operator by idempotency key. Only its answer moves them
  on; a key the operator never saw goes back to `pending` and is sent again under the same key.

Locks: no lock or open transaction is held while talking to the operator. Rows are claimed and
results applied under row locks taken in primary-key order, FOR NO KEY UPDATE: a transfer's id never
changes, and FOR UPDATE would also hold up the foreign-key check of a row naming the transfer (a receipt),
which PostgreSQL makes at commit, after that transaction appended to the transfer's trace stream: a
reversal holding the transfer and waiting for the stream deadlocked with it.
"""
from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.dispatch import Signal

from adapters.ecny.interface import (
    MAX_REQUEST_ID_LENGTH,
    Conditions,
    OperatorRejected,
    OperatorUnavailable,
    TransferInstruction,
    TransferResult,
    TransferStatus,
)
from treasury import bulk
from treasury.errors import IdempotencyConflict, InvalidTransfers, TransferNotReversible
from treasury.models import LedgerEntry, Transfer, TransferOutbox, Wallet
from treasury.models import TransferState as S
from treasury.trace.services import append_event_rows, encode_event_data

logger = logging.getLogger(__name__)

SUBJECT = "treasury.transfer"
# A batch's transfer events are chained in streams of this many consecutive transfer ids, so that
# workers settling different chunks of one batch never wait for each other's stream head.
TRACE_PARTITION_SIZE = 1000


def transfer_stream_key(*, batch_ref: str, transfer_id: int) -> str:
    """The trace stream of a transfer's events: its batch, partitioned by id."""
    return f"{batch_ref}#{transfer_id // TRACE_PARTITION_SIZE}"


def batch_of_transfer_stream(stream_key: str) -> str:
    """The batch a transfer's trace stream (`transfer_stream_key`) belongs to."""
    return stream_key.rsplit("#", 1)[0]


# A key is the transfer's request id at the operator, which takes no longer one (and would refuse the whole chunk).
MAX_KEY_LENGTH = min(Transfer._meta.get_field("idempotency_key").max_length, MAX_REQUEST_ID_LENGTH)
_NO_CONDITIONS = Conditions()
MAX_AMOUNT_FEN = 2 ** 63 - 1  # amount_fen is a 64-bit integer column


@dataclass(frozen=True)
class NewTransfer:
    """One transfer a domain asks for. Wallets are `treasury.Wallet` primary keys."""

    payer_id: int
    payee_id: int
    amount_fen: int
    idempotency_key: str
    purpose_code: str = ""
    memo: str = ""
    source_type_id: int | None = None  # ContentType id of the source document
    source_id: int | None = None
    source_ref: str = ""  # human-readable: "payroll batch 17 line 3"
    conditions: Conditions | None = None


def _operator():
    # Imported late so tests can point the client at a sandbox on a random port.
    from adapters.ecny.client import get_operator_client

    return get_operator_client()


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Row(NamedTuple):
    """The columns the hot paths need, without building model instances."""

    pk: int
    idempotency_key: str
    amount_fen: int
    batch_ref: str
    source_ref: str
    state: str


_ROW_COLUMNS = "id, idempotency_key, amount_fen, batch_ref, source_ref, state"


def _lock_rows(column: str, values: list, states) -> list[Row]:
    """Rows whose `column` is among `values` and whose state is in `states`, locked in primary-key
    order (so two workers never deadlock). SQLite's write transaction is the lock there."""
    if not values:
        return []
    where, params = bulk.in_clause(column, values)
    state_where, state_params = bulk.in_clause("state", [str(s) for s in states])
    lock = " FOR NO KEY UPDATE" if bulk.is_postgresql() else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_ROW_COLUMNS} FROM treasury_transfer WHERE {where} AND {state_where} ORDER BY id{lock}",
            params + state_params,
        )
        return [Row(*r) for r in cursor.fetchall()]


def _set_state(ids: list[int], *, state: str, now: datetime | None = None, failure_message: str | None = None) -> None:
    if not ids:
        return
    where, params = bulk.in_clause("id", ids)
    sets, set_params = ["state = %s"], [str(state)]
    if now is not None:
        sets.append("finished_at = %s")
        set_params.append(bulk.datetime_param(now))
    if failure_message is not None:
        sets.append("failure_message = %s")
        set_params.append(failure_message)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE treasury_transfer SET {', '.join(sets)} WHERE {where}", set_params + params)


def _close(ids: list[int]) -> None:
    """The transfers reached a final state: they leave the outbox."""
    if ids:
        where, params = bulk.in_clause("transfer_id", ids)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM treasury_transferoutbox WHERE {where}", params)


def _open_transfer_ids(condition: str, params: list) -> list[int]:
    """Ids of open transfers (those in the outbox) matching a condition on treasury_transfer t."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.id FROM treasury_transferoutbox o JOIN treasury_transfer t ON t.id = o.transfer_id "
            f"WHERE {condition} ORDER BY t.id",
            params,
        )
        return [row[0] for row in cursor.fetchall()]


def has_open_transfers(*, batch_ref: str) -> bool:
    """Whether a transfer of this batch still waits for an outcome (pending, submitted or unknown).

    One index probe into the outbox, no lock: cheap enough to poll while a run is paid."""
    return TransferOutbox.objects.filter(batch_ref=batch_ref).exists()


# Sent after commit when the operator's answers left a batch with no open transfer (none pending, submitted
# or unknown), with `batch_ref` and `now`: domains connect to move their run on at once (paid, partially
# paid...) instead of at their next periodic sweep, which still runs, so a lost signal costs only that wait.
batch_decided = Signal()


def _announce_decided(batch_refs: set[str], now: datetime) -> None:
    for batch_ref in sorted(batch_refs):
        if has_open_transfers(batch_ref=batch_ref):
            continue
        # A receiver's failure must not undo or repeat the money part, which has committed: logged, and the
        # domain's sweep moves the run on later.
        for receiver, result in batch_decided.send_robust(sender=Transfer, batch_ref=batch_ref, now=now):
            if isinstance(result, Exception):
                logger.error("moving batch %s on after its last transfer: %r", batch_ref, result)


# ---------------------------------------------------------------------------------------------
# Creating (the outbox)
# ---------------------------------------------------------------------------------------------


def create_transfers(
    *,
    organization_id: int,
    batch_ref: str,
    transfers: list[NewTransfer],
    actor: str,
    now: datetime,
    hold: bool = False,
    enqueue: bool = True,
    claimed: bool = False,
) -> list[int]:
    """Record transfers as `pending` in the caller's transaction; submit them after commit.

    Idempotent: a key that already exists for the same payer, payee and amount returns the existing
    transfer's id and creates nothing. All items are checked before anything is written.
    With `hold=True` the transfers wait for `release_transfers` (a paused run). With `enqueue=False`
    no task is queued: the caller submits them itself after commit (`submit_transfer_chunk`), e.g. to
    answer a real-time request in the same call; the outbox sweeper still sends any it leaves behind.
    With `claimed=True` (implies no task) the new transfers are recorded `submitted`, claimed by the
    caller, who sends them right after commit with `send_claimed_transfers`: no claiming statement and
    no `transfer.submitted` event (their `transfer.created` event says `"submitted": true`). If the
    caller dies before sending, recovery asks the operator after TRANSFER_RECOVERY_AFTER_SECONDS, and a
    key it never saw goes back to `pending` and is sent again, as for any claimed transfer.

    Returns the transfer ids in the order of `transfers`.

    Raises:
        InvalidTransfers: listing every bad item (amount, wallets, key, a spend-by time without offset); nothing
            written.
        IdempotencyConflict: a key already used for a different payment.
    """
    if not transfers:
        return []
    problems = []
    wallet_ids = {t.payer_id for t in transfers} | {t.payee_id for t in transfers}
    wallets = _wallets(wallet_ids)
    seen_keys = set()
    for index, t in enumerate(transfers):
        if type(t.amount_fen) is not int or not 0 < t.amount_fen <= MAX_AMOUNT_FEN:
            problems.append((index, "amount_fen", "金额必须为正整数分 (amount must be a positive whole number of fen)"))
        if t.payer_id == t.payee_id:
            problems.append((index, "payee_id", "付款方与收款方相同 (payer and payee are the same wallet)"))
        for field, wallet_pk in (("payer_id", t.payer_id), ("payee_id", t.payee_id)):
            wallet = wallets.get(wallet_pk)
            if wallet is None:
                problems.append((index, field, "钱包不存在 (no such wallet)"))
            elif wallet[1] != Wallet.Status.ACTIVE:
                problems.append((index, field, f"钱包状态为 {wallet[1]} (wallet is not active)"))
        if not t.idempotency_key or len(t.idempotency_key) > MAX_KEY_LENGTH:
            problems.append((index, "idempotency_key", f"幂等键必须为1-{MAX_KEY_LENGTH}个字符 (key required, at most {MAX_KEY_LENGTH} characters)"))
        elif t.idempotency_key in seen_keys:
            problems.append((index, "idempotency_key", "同一请求中幂等键重复 (key repeated in the same request)"))
        seen_keys.add(t.idempotency_key)
        expires_at = t.conditions.expires_at if t.conditions is not None else None
        if expires_at is not None and expires_at.utcoffset() is None:
            problems.append((index, "conditions", "智能合约截止时间须带时区 (spend-by time needs its UTC offset)"))
    if hold and claimed:
        problems.append((0, "held", "已认领的转账不能暂缓 (a claimed transfer cannot be held)"))
    if problems:
        raise InvalidTransfers(problems)

    existing = {}
    with connection.cursor() as cursor:
        for keys in _chunks(list(seen_keys), 5000):
            where, params = bulk.in_clause("idempotency_key", keys)
            cursor.execute(
                f"SELECT id, idempotency_key, payer_id, payee_id, amount_fen FROM treasury_transfer WHERE {where}", params
            )
            for pk, key, payer_id, payee_id, amount_fen in cursor.fetchall():
                existing[key] = {"pk": pk, "payer_id": payer_id, "payee_id": payee_id, "amount_fen": amount_fen}
    for t in transfers:
        row = existing.get(t.idempotency_key)
        if row and (row["payer_id"], row["payee_id"], row["amount_fen"]) != (t.payer_id, t.payee_id, t.amount_fen):
            raise IdempotencyConflict(
                f"幂等键 {t.idempotency_key} 已用于另一笔转账 (key already used for a different payment)"
            )

    new_items = [t for t in transfers if t.idempotency_key not in existing]
    conditions_json = _conditions_json_of(new_items)
    # Read once, not twice a row (an enum member read is a descriptor call).
    state = (S.SUBMITTED if claimed else S.PENDING).value
    attempts = 1 if claimed else 0
    with transaction.atomic():
        new_ids = bulk.allocate_ids(Transfer._meta.db_table, len(new_items))
        created_at = bulk.copy_time(now)
        submitted_at = created_at if claimed else None
        bulk.insert_rows(
            table=Transfer._meta.db_table,
            columns=_TRANSFER_COLUMNS,
            rows=(  # a generator: COPY stores rows while later ones are made
                (pk, t.idempotency_key, t.payer_id, t.payee_id, t.amount_fen, t.purpose_code, t.memo, t.source_type_id,
                 t.source_id, t.source_ref, organization_id, batch_ref, conditions_json[id(t.conditions)], state,
                 "", "", "", attempts, hold, actor, created_at, submitted_at)
                for pk, t in zip(new_ids, new_items)
            ),
        )
        bulk.insert_rows(table=TransferOutbox._meta.db_table, columns=["transfer_id", "batch_ref"],
                         rows=[(pk, batch_ref) for pk in new_ids])
        _trace(
            [Row(pk, t.idempotency_key, t.amount_fen, batch_ref, t.source_ref, state)
             for pk, t in zip(new_ids, new_items)],
            kind="transfer.created",
            actor=actor,
            now=now,
            data_for=lambda row, items=dict(zip(new_ids, new_items)): _created_data(
                items[row.pk], wallets, conditions_json, claimed=claimed),
        )
    created_ids = {t.idempotency_key: pk for pk, t in zip(new_ids, new_items)}
    ids = [created_ids.get(t.idempotency_key) or existing[t.idempotency_key]["pk"] for t in transfers]
    if enqueue and not hold and not claimed:
        enqueue_submission(new_ids)
    return ids


_TRANSFER_COLUMNS = [
    "id", "idempotency_key", "payer_id", "payee_id", "amount_fen", "purpose_code", "memo", "source_type_id",
    "source_id", "source_ref", "organization_id", "batch_ref", "conditions", "state", "operator_txn_id",
    "failure_code", "failure_message", "submit_attempts", "held", "created_by", "created_at", "submitted_at",
]


def _wallets(pks) -> dict[int, tuple[str, str]]:
    """{wallet pk: (wallet id, status)} in one query with one array parameter (not an ORM IN list of
    thousands of parameters, whose building and binding cost more than the query)."""
    if not pks:
        return {}
    where, params = bulk.in_clause("id", list(pks))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, wallet_id, status FROM {Wallet._meta.db_table} WHERE {where}", params)
        return {pk: (wallet_id, status) for pk, wallet_id, status in cursor.fetchall()}


def _created_data(t: NewTransfer, wallets: dict, conditions_json: dict, *, claimed: bool) -> dict:
    data = {
        "key": t.idempotency_key,
        "payer": wallets[t.payer_id][0],
        "payee": wallets[t.payee_id][0],
        "purpose": t.purpose_code,
    }
    if conditions_json[id(t.conditions)]:
        data["conditions"] = t.conditions.to_json()
    if claimed:
        data["submitted"] = True  # created claimed: no transfer.submitted event follows
    return data


def _conditions_json_of(items: list[NewTransfer]) -> dict[int, str | None]:
    """{id(conditions): stored JSON} once per distinct object: a run's transfers share one Conditions."""
    return {id(t.conditions): _conditions_json(t.conditions) for t in {id(t.conditions): t for t in items}.values()}


def _conditions_json(conditions: Conditions | None) -> str | None:
    if conditions is None or conditions.is_empty():
        return None
    return json.dumps(conditions.to_json(), sort_keys=True, ensure_ascii=False)


def submission_chunks(transfer_ids: list[int], size: int | None = None) -> list[list[int]]:
    """The ids, sorted, cut into chunks of at most `size` (TRANSFER_CHUNK_SIZE) whose edges fall on the
    trace partitions' edges (multiples of TRACE_PARTITION_SIZE ids, or of whole partitions when `size` is
    larger): a chunk's events then go to streams no other chunk writes, so two workers settling
    neighbouring chunks never wait for each other's stream head."""
    size = size or settings.TRANSFER_CHUNK_SIZE
    span = TRACE_PARTITION_SIZE * max(1, size // TRACE_PARTITION_SIZE)
    chunks, current = [], []
    for pk in sorted(transfer_ids):
        if current and (len(current) >= size or pk // span != current[0] // span):
            chunks.append(current)
            current = []
        current.append(pk)
    if current:
        chunks.append(current)
    return chunks


def enqueue_submission(transfer_ids: list[int]) -> None:
    """Queue one submit task per chunk, after the surrounding transaction commits."""
    from treasury.tasks import submit_transfer_chunk_task

    for chunk in submission_chunks(transfer_ids):
        # partial binds this chunk now; a bare lambda in a loop would see only the last one.
        transaction.on_commit(partial(submit_transfer_chunk_task.apply_async, kwargs={"transfer_ids": chunk}))


def release_transfers(*, transfer_ids: list[int], actor: str, now: datetime) -> int:
    """Release held pending transfers for submission. Returns how many were released."""
    with transaction.atomic():
        rows = _lock_rows("id", transfer_ids, [S.PENDING])
        ids = [r.pk for r in rows]
        released = Transfer.objects.filter(pk__in=ids, held=True).update(held=False)
        _trace(rows, kind="transfer.released", actor=actor, now=now)
        enqueue_submission(ids)
    return released


def hold_pending_transfers(*, transfer_ids: list[int], actor: str, now: datetime) -> int:
    """Hold transfers not yet sent to the operator (a paused run). Returns how many were held.

    Transfers already claimed by a worker go on: they are in flight, only the operator decides them.
    """
    with transaction.atomic():
        rows = _lock_rows("id", transfer_ids, [S.PENDING])
        held = Transfer.objects.filter(pk__in=[r.pk for r in rows], held=False).update(held=True)
        _trace(rows, kind="transfer.held", actor=actor, now=now)
    return held


def hold_claimed_transfers(*, transfer_ids: list[int], actor: str, now: datetime) -> int:
    """Claimed transfers (`create_transfers(claimed=True)`) whose sender will not send them after all (their
    run was paused before it did): back to pending and held, for `release_transfers`. Returns how many.

    Only rows still `submitted` change. Should one have been sent already (its task delivered twice), the
    operator's answer to that call is not recorded; once released it is sent again under the same key, and
    the operator answers with what it applied: paid once either way.
    """
    with transaction.atomic():
        rows = _lock_rows("id", transfer_ids, [S.SUBMITTED])
        if rows:
            where, params = bulk.in_clause("id", [r.pk for r in rows])
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE treasury_transfer SET state = %s, held = %s WHERE {where}",
                               [Transfer.target_of(Transfer.requeue), True, *params])
        _trace(rows, kind="transfer.held", actor=actor, now=now, data={"reason": "run paused before sending"})
    return len(rows)


def cancel_pending_transfers(*, transfer_ids: list[int], reason: str, actor: str, now: datetime) -> list[int]:
    """Cancel transfers that have not been sent to the operator. Returns the ids cancelled.

    Transfers already submitted are left as they are: only the operator's answer decides them.
    """
    with transaction.atomic():
        rows = _lock_rows("id", transfer_ids, Transfer.sources_of(Transfer.cancel))
        _set_state([r.pk for r in rows], state=Transfer.target_of(Transfer.cancel), now=now, failure_message=reason[:255])
        _close([r.pk for r in rows])
        _trace(rows, kind="transfer.cancelled", actor=actor, now=now, data={"reason": reason})
    return [r.pk for r in rows]


# ---------------------------------------------------------------------------------------------
# Submitting
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChunkOutcome:
    claimed: int = 0
    settled: int = 0
    failed: int = 0
    unknown: int = 0


# What sending a claimed row needs (`_send`): the `Row` columns, then the instruction's.
_SEND_COLUMNS = f"{_ROW_COLUMNS}, payer_id, payee_id, purpose_code, memo, conditions"


def _claim(transfer_ids: list[int], now: datetime) -> list[tuple]:
    """pending -> submitted for the unheld pending rows among `transfer_ids`, in one statement.

    On PostgreSQL rows another worker holds are skipped (SKIP LOCKED), so two workers given the
    same chunk split it instead of both sending it; on SQLite the write transaction serializes them.
    """
    where, params = bulk.in_clause("id", transfer_ids)
    lock = " FOR NO KEY UPDATE SKIP LOCKED" if bulk.is_postgresql() else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE treasury_transfer SET state = %s, submitted_at = %s, submit_attempts = submit_attempts + 1 "
            f"WHERE id IN (SELECT id FROM treasury_transfer WHERE {where} AND state = %s AND NOT held "
            f"ORDER BY id{lock}) "
            f"RETURNING {_SEND_COLUMNS}",
            [S.SUBMITTED, bulk.datetime_param(now), *params, S.PENDING],
        )
        return sorted(cursor.fetchall())


def submit_transfer_chunk(*, transfer_ids: list[int], now: datetime) -> ChunkOutcome:
    """Send the pending transfers among `transfer_ids` to the operator in one batch call.

    Safe to run twice or concurrently for the same ids: rows are claimed (pending -> submitted)
    under row locks, so each is sent by one worker; a second run finds nothing to claim.
    """
    with transaction.atomic():
        claimed = _claim(transfer_ids, now)
        if not claimed:
            return ChunkOutcome()
        _trace([Row(*c[:6]) for c in claimed], kind="transfer.submitted", actor="system", now=now)
    return _send(claimed, now=now)


def send_claimed_transfers(*, transfer_ids: list[int], now: datetime) -> ChunkOutcome:
    """Send transfers made with `create_transfers(claimed=True)` to the operator in one batch call, after the
    commit that recorded them, and record the answers as `submit_transfer_chunk` does. Those no longer
    `submitted` (recovery moved them on meanwhile) are left alone; sending one twice is harmless, as the
    operator dedupes on its key."""
    if not transfer_ids:
        return ChunkOutcome()
    where, params = bulk.in_clause("id", transfer_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {_SEND_COLUMNS} FROM treasury_transfer "
            f"WHERE {where} AND state = %s ORDER BY id",
            [*params, S.SUBMITTED],
        )
        claimed = cursor.fetchall()
    return _send(claimed, now=now) if claimed else ChunkOutcome()


def _send(claimed: list[tuple], *, now: datetime) -> ChunkOutcome:
    """One operator batch call for claimed rows (`_SEND_COLUMNS`), with no lock or transaction open, then the
    answers recorded."""
    rows = [Row(*c[:6]) for c in claimed]
    wallet_pks = {c[6] for c in claimed} | {c[7] for c in claimed}
    wallet_ids = {pk: wallet_id for pk, (wallet_id, _) in _wallets(wallet_pks).items()}
    instructions = [
        TransferInstruction(
            request_id=c[1],
            payer_wallet=wallet_ids[c[6]],
            payee_wallet=wallet_ids[c[7]],
            amount_fen=c[2],
            purpose_code=c[8],
            memo=c[9],
            conditions=_NO_CONDITIONS if c[10] is None else Conditions.from_json(
                json.loads(c[10]) if isinstance(c[10], str) else c[10]),
        )
        for c in claimed
    ]
    ids = [r.pk for r in rows]
    try:
        results = _operator().transfer_batch(instructions)
    except OperatorUnavailable as exc:
        # Timeout, 5xx, unreadable reply: we do not know what the operator applied.
        logger.warning("operator batch outcome unknown for %d transfers: %s", len(ids), exc)
        unknown = mark_outcome_unknown(transfer_ids=ids, reason=str(exc)[:255], now=now)
        return ChunkOutcome(claimed=len(ids), unknown=unknown)
    except OperatorRejected as exc:
        # The operator refused the request as a whole and applied nothing.
        logger.error("operator rejected a batch of %d transfers: %s", len(ids), exc)
        results = [
            TransferResult(request_id=i.request_id, status=TransferStatus.FAILED, code="OPERATOR_REJECTED",
                           message=str(exc)[:255])
            for i in instructions
        ]
    applied = apply_operator_results(results=results, now=now)
    return ChunkOutcome(claimed=len(ids), settled=applied["settled"], failed=applied["failed"])


def mark_outcome_unknown(*, transfer_ids: list[int], reason: str, now: datetime) -> int:
    """submitted -> unknown: the recovery task will ask the operator."""
    with transaction.atomic():
        rows = _lock_rows("id", transfer_ids, Transfer.sources_of(Transfer.mark_unknown))
        _set_state([r.pk for r in rows], state=Transfer.target_of(Transfer.mark_unknown), failure_message=reason)
        _trace(rows, kind="transfer.outcome_unknown", actor="system", now=now, data={"reason": reason})
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Applying what the operator says
# ---------------------------------------------------------------------------------------------


def apply_operator_results(*, results: list[TransferResult], now: datetime) -> dict[str, int]:
    """Record the operator's answers in one transaction: states, postings, trace.

    Only rows still waiting for an answer (submitted/unknown) change, except that a RETURNED or
    REVERSED answer also reaches a settled row. Applying the same answers twice changes nothing.
    `now` is when the operator was asked: a NOT_FOUND answer leaves a row claimed again after it alone.
    """
    by_key = {r.request_id: r for r in results}
    counts = {"settled": 0, "failed": 0, "requeued": 0, "returned": 0, "reversed": 0}
    if not by_key:
        return counts
    if bulk.is_postgresql() and all(r.status == TransferStatus.SETTLED for r in by_key.values()):
        counts["settled"] = _apply_all_settled(by_key, now=now)
        return counts
    with transaction.atomic():
        waiting = set(Transfer.sources_of(Transfer.settle))
        rows = _lock_rows("idempotency_key", list(by_key), [*waiting, S.SETTLED])
        to_settle, to_fail, to_requeue, came_back = [], [], [], []
        for t in rows:
            result = by_key[t.idempotency_key]
            if t.state in waiting:
                if result.status in (TransferStatus.SETTLED, TransferStatus.RETURNED, TransferStatus.REVERSED):
                    to_settle.append((t, result))
                    if result.status != TransferStatus.SETTLED:
                        came_back.append((t, result))
                elif result.status == TransferStatus.FAILED:
                    to_fail.append((t, result))
                elif result.status == TransferStatus.NOT_FOUND:
                    to_requeue.append(t)
            elif result.status in (TransferStatus.RETURNED, TransferStatus.REVERSED):
                came_back.append((t, result))

        if to_settle:
            _set_settled(to_settle, now=now)
            settled_ids = [t.pk for t, _ in to_settle]
            _trace([t for t, _ in to_settle], kind="transfer.settled", actor="operator", now=now,
                   data_for=lambda t: {"operator_txn_id": by_key[t.idempotency_key].operator_txn_id})
            _close(settled_ids)
            # Postings last: they lock the payer's balance row, which every chunk of a run shares,
            # so the lock is held only for the moments before commit.
            _post(settled_ids, kind=LedgerEntry.Kind.SETTLEMENT, now=now)
            counts["settled"] = len(to_settle)
            if settings.RECEIPTS_AUTO_ISSUE:
                _enqueue_receipts(settled_ids)
        if to_fail:
            _set_failed(to_fail, now=now)
            _close([t.pk for t, _ in to_fail])
            _trace([t for t, _ in to_fail], kind="transfer.failed", actor="operator", now=now,
                   data_for=lambda t: {"code": by_key[t.idempotency_key].code,
                                       "message": by_key[t.idempotency_key].message})
            counts["failed"] = len(to_fail)
        decided_refs = {t.batch_ref for t, _ in to_settle + to_fail}
        if decided_refs:
            transaction.on_commit(partial(_announce_decided, decided_refs, now))
        if to_requeue:
            # A row claimed again after the caller's `now` (the time it asked) is a newer send, perhaps in flight:
            # "never seen" was said before it, and only that send's answer or a later question decides it.
            sent_since = set(Transfer.objects.filter(pk__in=[t.pk for t in to_requeue], submitted_at__gt=now)
                             .values_list("pk", flat=True))
            to_requeue = [t for t in to_requeue if t.pk not in sent_since]
        if to_requeue:
            ids = [t.pk for t in to_requeue]
            _set_state(ids, state=Transfer.target_of(Transfer.requeue))
            _trace(to_requeue, kind="transfer.requeued", actor="system", now=now,
                   data={"reason": "operator never applied this key; sent again under the same key"})
            enqueue_submission(ids)
            counts["requeued"] = len(to_requeue)
        for status, method, kind in (
            (TransferStatus.RETURNED, Transfer.mark_returned, LedgerEntry.Kind.RETURN),
            (TransferStatus.REVERSED, Transfer.mark_reversed, LedgerEntry.Kind.REVERSAL),
        ):
            group = [t for t, r in came_back if r.status == status]
            if group:
                ids = [t.pk for t in group]
                _set_state(ids, state=Transfer.target_of(method), now=now)
                _post(ids, kind=kind, now=now)
                _trace(group, kind=f"transfer.{status}", actor="operator", now=now)
                counts[status] = len(group)
    return counts


def _apply_all_settled(by_key: dict[str, TransferResult], *, now: datetime) -> int:
    """`apply_operator_results` when every answer is SETTLED (a chunk paid in full), on PostgreSQL.

    The same rules in fewer statements: one locks the rows still waiting (in primary-key order, as
    `_lock_rows`), settles them and takes them out of the outbox; then trace and postings as usual.
    Rows already settled, or in any other state, are left alone. Returns how many were settled.
    """
    keys = list(by_key)
    adapt = connection.ops.adapt_datetimefield_value
    waiting = [str(s) for s in Transfer.sources_of(Transfer.settle)]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH l AS MATERIALIZED (SELECT id FROM treasury_transfer WHERE idempotency_key = ANY(%s::text[]) "
                "AND state = ANY(%s::text[]) ORDER BY id FOR NO KEY UPDATE), "
                "u AS (UPDATE treasury_transfer t SET state = %s, operator_txn_id = v.operator_txn_id, "
                "settled_at = v.settled_at, finished_at = %s, failure_code = '', failure_message = '' "
                "FROM l, unnest(%s::text[], %s::text[], %s::timestamptz[]) AS v(key, operator_txn_id, settled_at) "
                "WHERE t.id = l.id AND t.idempotency_key = v.key "
                f"RETURNING {', '.join('t.' + c.strip() for c in _ROW_COLUMNS.split(','))}), "
                # By an array, not joined to u: the outbox is a queue, often empty when its statistics are
                # taken, and then planned as one row; joined, a full outbox was walked once per settled
                # row (370 ms a chunk with 100,000 transfers waiting).
                "d AS (DELETE FROM treasury_transferoutbox WHERE transfer_id = ANY(ARRAY(SELECT id FROM u))) "
                f"SELECT {_ROW_COLUMNS} FROM u ORDER BY id",
                [bulk.array_literal(keys), bulk.array_literal(waiting), S.SETTLED, adapt(now), bulk.array_literal(keys),
                 bulk.array_literal([by_key[k].operator_txn_id or "" for k in keys]),
                 bulk.array_literal([adapt(by_key[k].settled_at or now) for k in keys])],
            )
            rows = [Row(*r) for r in cursor.fetchall()]
        if not rows:
            return 0
        settled_ids = [t.pk for t in rows]
        _trace(rows, kind="transfer.settled", actor="operator", now=now,
               data_for=lambda t: {"operator_txn_id": by_key[t.idempotency_key].operator_txn_id})
        # Postings last, as in apply_operator_results: the payer's balance row is locked just before commit.
        _post(settled_ids, kind=LedgerEntry.Kind.SETTLEMENT, now=now)
        if settings.RECEIPTS_AUTO_ISSUE:
            _enqueue_receipts(settled_ids)
        transaction.on_commit(partial(_announce_decided, {t.batch_ref for t in rows}, now))
    return len(rows)


def _enqueue_receipts(transfer_ids: list[int]) -> None:
    from treasury.receipts.tasks import issue_transfer_receipts_task

    transaction.on_commit(partial(issue_transfer_receipts_task.apply_async, kwargs={"transfer_ids": transfer_ids}))


def _set_settled(pairs, *, now: datetime) -> None:
    adapt = connection.ops.adapt_datetimefield_value  # looked up once, not once a row
    bulk.update_rows(
        table="treasury_transfer",
        columns=[("operator_txn_id", "text"), ("settled_at", "timestamptz")],
        rows=[(t.pk, r.operator_txn_id or "", adapt(r.settled_at or now)) for t, r in pairs],
        set_sql="state = %s, finished_at = %s, failure_code = '', failure_message = ''",
        set_params=[S.SETTLED, bulk.datetime_param(now)],
    )


def _set_failed(pairs, *, now: datetime) -> None:
    bulk.update_rows(
        table="treasury_transfer",
        columns=[("failure_code", "text"), ("failure_message", "text")],
        rows=[(t.pk, (r.code or "FAILED")[:40], (r.message or "")[:255]) for t, r in pairs],
        set_sql="state = %s, finished_at = %s",
        set_params=[S.FAILED, bulk.datetime_param(now)],
    )


# Settlement moves money payer -> payee; a return or reversal moves it back.
_DIRECTION = {
    LedgerEntry.Kind.SETTLEMENT: (-1, 1),
    LedgerEntry.Kind.RETURN: (1, -1),
    LedgerEntry.Kind.REVERSAL: (1, -1),
}


def _post(transfer_ids: list[int], *, kind: str, now: datetime) -> None:
    """Post balanced entries for these transfers and move the balances, set-based.

    After locking the touched accounts in primary-key order: on PostgreSQL one statement (both
    sides inserted, summed per account from RETURNING, balances updated); on SQLite two
    INSERT ... SELECT statements and one UPDATE. In the caller's transaction. The unique
    (transfer, account, kind) constraint makes a second posting of the same transfer fail loudly
    instead of doubling money.
    """
    if not transfer_ids:
        return
    payer_sign, payee_sign = _DIRECTION[kind]
    where, ids = bulk.in_clause("id", transfer_ids)
    entry_where, entry_ids = bulk.in_clause("transfer_id", transfer_ids)
    posted_at = bulk.datetime_param(now)
    with connection.cursor() as cursor:
        if bulk.is_postgresql():
            # The touched accounts, found through the wallet index (asked as `wallet_id IN (SELECT ...)`
            # the planner hashed the chunk's wallets and read every account: 25 ms a chunk at 100,000
            # accounts, 4 ms this way), then locked in primary-key order before balances change. Locked
            # by id, not in the same statement: a row another chunk held is re-checked when its lock is
            # released, and re-checking `wallet_id = ANY(...)` walks the array (55 against 7 ms a chunk
            # when every chunk posts to the same 1,001 accounts); a constant id array is hashed.
            cursor.execute(
                "SELECT a.id, a.wallet_id FROM treasury_ledgeraccount a WHERE a.wallet_id = ANY(ARRAY("
                f"SELECT payer_id FROM treasury_transfer WHERE {where} UNION "
                f"SELECT payee_id FROM treasury_transfer WHERE {where}))",
                ids + ids,
            )
            accounts = cursor.fetchall()
            account_ids = bulk.array_literal(a[0] for a in accounts)
            wallet_ids = bulk.array_literal(a[1] for a in accounts)
            cursor.execute("SELECT id FROM treasury_ledgeraccount WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE",
                           [account_ids])
            # Both sides and the balances in one statement: the entries inserted are summed per
            # account straight from RETURNING (no second read of the transfers or the entries). The
            # accounts are the ones just locked, passed back as arrays: joined to the table instead,
            # the planner at times read all of it twice (65 of 86 ms a chunk at 100,000 accounts).
            cursor.execute(
                f"WITH t AS (SELECT id, payer_id, payee_id, amount_fen FROM treasury_transfer WHERE {where}), "
                "a AS (SELECT * FROM unnest(%s::bigint[], %s::bigint[]) AS a(id, wallet_id)), "
                "e AS (INSERT INTO treasury_ledgerentry (transfer_id, account_id, kind, amount_fen, posted_at) "
                "SELECT t.id, a.id, %s, %s * t.amount_fen, %s FROM t JOIN a ON a.wallet_id = t.payer_id "
                "UNION ALL "
                "SELECT t.id, a.id, %s, %s * t.amount_fen, %s FROM t JOIN a ON a.wallet_id = t.payee_id "
                "RETURNING account_id, amount_fen), "
                "d AS (SELECT account_id, SUM(amount_fen) AS delta, COUNT(*) AS entries FROM e GROUP BY account_id), "
                "u AS (UPDATE treasury_ledgeraccount SET balance_fen = balance_fen + d.delta, updated_at = %s FROM d "
                "WHERE treasury_ledgeraccount.id = d.account_id) "
                "SELECT COALESCE(SUM(entries), 0) FROM d",
                [*ids, account_ids, wallet_ids, kind, payer_sign, posted_at, kind, payee_sign, posted_at, posted_at],
            )
            inserted = cursor.fetchone()[0]
            if inserted != 2 * len(transfer_ids):
                # A wallet without its ledger account would leave a one-sided posting: refuse it all
                # (the exception rolls the caller's transaction back, balances included).
                raise RuntimeError(f"posting {kind}: {inserted} entries for {len(transfer_ids)} transfers")
            return
        inserted = 0
        for side, sign in (("payer_id", payer_sign), ("payee_id", payee_sign)):
            cursor.execute(
                "INSERT INTO treasury_ledgerentry (transfer_id, account_id, kind, amount_fen, posted_at) "
                f"SELECT t.id, a.id, %s, %s * t.amount_fen, %s FROM treasury_transfer t "
                f"JOIN treasury_ledgeraccount a ON a.wallet_id = t.{side} WHERE t.{where}",
                [kind, sign, posted_at, *ids],
            )
            inserted += cursor.rowcount
        if inserted != 2 * len(transfer_ids):
            # A wallet without its ledger account would leave a one-sided posting: refuse it all.
            raise RuntimeError(f"posting {kind}: {inserted} entries for {len(transfer_ids)} transfers")
        cursor.execute(
            "UPDATE treasury_ledgeraccount SET balance_fen = balance_fen + d.delta, updated_at = %s FROM ("
            "SELECT account_id, SUM(amount_fen) AS delta FROM treasury_ledgerentry "
            f"WHERE kind = %s AND {entry_where} GROUP BY account_id) d "
            "WHERE treasury_ledgeraccount.id = d.account_id",
            [posted_at, kind, *entry_ids],
        )


def _trace(rows, *, kind: str, actor: str, now: datetime, data: dict | None = None, data_for=None) -> None:
    """Append one event per transfer to its stream (batch and id partition), in bulk: plain rows,
    not an EventSpec each (the bulk paths write three events per transfer)."""
    shared = encode_event_data(data)
    by_partition = defaultdict(list)
    for t in rows:
        by_partition[(t.batch_ref, t.pk // TRACE_PARTITION_SIZE)].append(
            (kind, SUBJECT, str(t.pk), actor, t.amount_fen, t.source_ref,
             encode_event_data(data_for(t)) if data_for else shared)
        )
    streams = {transfer_stream_key(batch_ref=batch_ref, transfer_id=part * TRACE_PARTITION_SIZE): (batch_ref, part)
               for batch_ref, part in by_partition}
    for stream_key in sorted(streams):  # one order for every writer: no deadlock on stream heads
        append_event_rows(stream_key=stream_key, rows=by_partition[streams[stream_key]], now=now)


# ---------------------------------------------------------------------------------------------
# Recovery, reversal
# ---------------------------------------------------------------------------------------------


def recover_unconfirmed_transfers(*, now: datetime, older_than_seconds: int | None = None) -> dict[str, int]:
    """Ask the operator about every transfer whose outcome we do not know, and record its answer.

    `unknown` rows are asked at once; `submitted` rows only once they are older than
    TRANSFER_RECOVERY_AFTER_SECONDS (younger ones may still be in flight). A key the operator
    never saw goes back to `pending` and is sent again under the same key (the operator dedupes).
    Safe to run concurrently with submitters and with itself.
    """
    if older_than_seconds is None:
        older_than_seconds = settings.TRANSFER_RECOVERY_AFTER_SECONDS
    cutoff = now - timedelta(seconds=older_than_seconds)
    totals = defaultdict(int)
    ids = _open_transfer_ids(
        "t.state = %s OR (t.state = %s AND t.submitted_at < %s)",
        [S.UNKNOWN, S.SUBMITTED, bulk.datetime_param(cutoff)],
    )
    for chunk in _chunks(ids, settings.TRANSFER_CHUNK_SIZE):
        keys = list(Transfer.objects.filter(pk__in=chunk).values_list("idempotency_key", flat=True))
        try:
            results = _operator().query(keys)
        except OperatorUnavailable as exc:
            logger.warning("recovery query failed, will try again: %s", exc)
            totals["query_failed"] += len(keys)
            continue
        for name, count in apply_operator_results(results=results, now=now).items():
            totals[name] += count
    return dict(totals)


def refresh_transfers(*, transfer_ids: list[int], now: datetime) -> dict[str, int]:
    """Ask the operator about these transfers (e.g. to learn of returns) and record its answers."""
    keys = list(Transfer.objects.filter(pk__in=transfer_ids).values_list("idempotency_key", flat=True))
    totals = defaultdict(int)
    for chunk in _chunks(keys, settings.TRANSFER_CHUNK_SIZE):
        for name, count in apply_operator_results(results=_operator().query(chunk), now=now).items():
            totals[name] += count
    return dict(totals)


def submit_stranded_pending_transfers(*, now: datetime, older_than_seconds: int = 60) -> int:
    """Re-queue pending transfers whose after-commit task never ran (a crash between commit and queue)."""
    cutoff = now - timedelta(seconds=older_than_seconds)
    ids = _open_transfer_ids(
        "t.state = %s AND NOT t.held AND t.created_at < %s", [S.PENDING, bulk.datetime_param(cutoff)]
    )
    with transaction.atomic():
        enqueue_submission(ids)
    return len(ids)


def _reversal_request_id(*, idempotency_key: str, attempt: int) -> str:
    """The operator request id of a transfer's reversal attempt: `<key>:reversal`, then `<key>:reversal:<n>`. A key
    too long for that to fit the operator's request ids stands there as the first 40 hex digits of its SHA-256."""
    suffix = ":reversal" + (f":{attempt}" if attempt > 1 else "")
    if len(idempotency_key) + len(suffix) > MAX_REQUEST_ID_LENGTH:
        idempotency_key = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    return idempotency_key + suffix


def reverse_transfer(*, transfer_id: int, reason: str, actor: str, now: datetime) -> Transfer:
    """Reverse a settled transfer at the operator (冲正) and post the reversal.

    Each attempt has its own request id derived from the transfer's key (`_reversal_request_id`). Calling this
    again after a timeout asks under the same id, so that reversal is applied at most once; only the
    operator's refusal, final for its id, moves the next call on to a new id. Every id before the current one
    was refused, so at most one reversal can ever be applied.

    Raises:
        TransferNotReversible: the transfer is not settled, or the operator refused (call again once the cause
            is gone, e.g. the payee's balance is back: a new attempt is asked).
        OperatorUnavailable: outcome unknown; call again (the same attempt is asked).
    """
    transfer = Transfer.objects.get(pk=transfer_id)
    if transfer.state == S.REVERSED:
        return transfer
    if transfer.state != S.SETTLED:
        raise TransferNotReversible(f"只能冲正已结算的转账 (only a settled transfer can be reversed; this one is {transfer.state})")
    attempt = transfer.reversal_refusals + 1
    result = _operator().reverse(
        request_id=_reversal_request_id(idempotency_key=transfer.idempotency_key, attempt=attempt),
        original_request_id=transfer.idempotency_key, reason=reason,
    )
    if result.status not in (TransferStatus.REVERSED, TransferStatus.SETTLED):
        if result.status == TransferStatus.FAILED:
            _count_reversal_refusal(transfer_id, attempt=attempt, result=result, reason=reason, actor=actor, now=now)
        raise TransferNotReversible(f"运营机构拒绝冲正: {result.code} {result.message}")
    with transaction.atomic():
        rows = _lock_rows("id", [transfer_id], [S.SETTLED])
        if rows:
            _set_state([transfer_id], state=Transfer.target_of(Transfer.mark_reversed), now=now)
            _post([transfer_id], kind=LedgerEntry.Kind.REVERSAL, now=now)
            _trace(rows, kind="transfer.reversed", actor=actor, now=now,
                   data={"reason": reason, "operator_txn_id": result.operator_txn_id})
    return Transfer.objects.get(pk=transfer_id)


def _count_reversal_refusal(transfer_id: int, *, attempt: int, result: TransferResult, reason: str, actor: str,
                            now: datetime) -> None:
    """Record that the operator refused reversal attempt `attempt`, so the next call asks a new one. Callers
    refused under the same id at once count it once (the update names the count they read)."""
    with transaction.atomic():
        rows = _lock_rows("id", [transfer_id], [S.SETTLED])
        if rows and Transfer.objects.filter(pk=transfer_id, reversal_refusals=attempt - 1).update(
                reversal_refusals=attempt):
            _trace(rows, kind="transfer.reversal_refused", actor=actor, now=now,
                   data={"attempt": attempt, "code": result.code, "message": result.message, "reason": reason})
