"""The whole path of money: from a transfer, a wallet or a source document (a batch ref or a
source ref), the ordered events with times, actors and amounts, and the transfers involved
(source document -> transfers -> payee wallets).

Scoped through `treasury.access.scoping`: a user sees the events of transfers they may see.
Document events (a batch approved, a voucher issued: any subject other than a transfer) are shown
to the organization that ran the transfers, and to auditors and administrators; an organization
that only receives a payment sees that payment's events, not the payer's documents.

Each event carries its chain status, checked against the stored chain while the page is built
(content hash, link to its predecessor, whether a signed checkpoint covers it). The whole trace is
verified by `verification.verify_trace`.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from operator import or_
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, Max, OuterRef, Q, Sum
from django.http import Http404
from django.utils.translation import pgettext

from treasury import identifiers
from treasury.access.scoping import sees_all_organizations, user_organization, visible_transfers, visible_wallets
from treasury.identifiers import InvalidIdentifier, validate_wallet_id
from treasury.logmask import mask_text
from treasury.models import Transfer, Wallet
from treasury.money import format_yuan

from . import labels
from .models import TRANSFER_SUBJECT, TraceCheckpointHead, TraceEvent
from .services import GENESIS_HASH, canonical_event_bytes

EVENT_LIMIT = 1000  # events on one page; the API pages further with offset
TRANSFER_LIMIT = 500  # transfers listed for a wallet or a document

# Chain status of one event, as the page shows it.
CHAIN_OK = "ok"  # content matches its hash and it links to its predecessor
CHAIN_ALTERED = "altered"  # content does not match its hash
CHAIN_BROKEN = "broken"  # does not link to the stored event before it
CHAIN_GAP = "gap"  # the event before it is missing


class EventDetail(NamedTuple):
    """One entry of an event's data as pages show it: the stored key, its label, the value in words."""

    key: str
    label: str
    value: str


def _detail_value(key: str, value, usernames: dict[int, str]) -> str:
    if key.endswith("_fen") and type(value) is int:
        return format_yuan(value)
    if key.endswith("_by") and type(value) is int:
        return usernames.get(value, str(value))
    if isinstance(value, bool):
        return pgettext("trace detail", "yes") if value else pgettext("trace detail", "no")
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list) and not any(isinstance(v, (list, dict)) for v in value):
        return ", ".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def event_details(data: dict) -> list[EventDetail]:
    """An event's data as pages and the API show it, in stored order: personal data masked (`mask_data`), each key
    with its label (`labels.detail_label`), each value in words: an amount in fen (a key ending in `_fen`) in yuan,
    a person named by id (`reviewed_by`) by username, yes / no, a list of serials joined, nothing as a dash,
    anything else that is not text as its JSON."""
    return _details_of(mask_data(data))


def _details_of(masked: dict) -> list[EventDetail]:
    """`event_details` of data already masked (a `TimelineEvent`'s)."""
    masked = _as_object(masked)
    user_ids = [value for key, value in masked.items() if key.endswith("_by") and type(value) is int]
    usernames = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username")) if user_ids else {}
    return [EventDetail(key, labels.detail_label(key), _detail_value(key, value, usernames))
            for key, value in masked.items()]


@dataclass(frozen=True)
class TimelineEvent:
    id: int
    stream_key: str
    seq: int
    kind: str
    subject_type: str
    subject_id: str
    source_ref: str
    actor: str
    amount_fen: int | None
    data: dict  # personal data masked
    occurred_at: datetime
    prev_hash: str
    hash: str
    chain_status: str
    checkpointed: bool  # a signed checkpoint covers it

    @property
    def kind_label(self) -> str:
        return labels.event_label(self.kind)

    @property
    def actor_label(self) -> str:
        return labels.actor_label(self.actor)

    @property
    def subject_label(self) -> str:
        return labels.subject_label(self.subject_type)

    @property
    def subject_url(self) -> str:
        return labels.subject_url(self.subject_type, self.subject_id)

    @property
    def details(self) -> list[EventDetail]:
        """The data as pages show it (`event_details`). (A template looping over `data.items` would get the value
        of a key named "items" instead.)"""
        return _details_of(self.data)  # masked when the event was read

    @property
    def stream_document(self) -> str:
        """The document or batch the stream is about, to link to: a transfer's stream is its batch's,
        partitioned by id ("<batch>#<n>", `transfer_stream_key`)."""
        if self.subject_type == TRANSFER_SUBJECT and "#" in self.stream_key:
            from treasury.services.transfers import batch_of_transfer_stream

            return batch_of_transfer_stream(self.stream_key)
        return self.stream_key

    @property
    def transfer_id(self) -> int | None:
        if self.subject_type == TRANSFER_SUBJECT and self.subject_id.isdecimal():
            return int(self.subject_id)
        return None


@dataclass(frozen=True)
class TracedTransfer:
    id: int
    idempotency_key: str
    state: str
    amount_fen: int
    payer_wallet_id: str  # full id, for the API (masked there too); pages show it masked
    payer_wallet_pk: int  # pages link to the wallet's trace by it, so no wallet id is in a link
    payer_name: str  # masked for persons
    payee_wallet_id: str
    payee_wallet_pk: int
    payee_name: str
    organization: str
    batch_ref: str
    source_ref: str
    created_at: datetime
    settled_at: datetime | None

    @property
    def payer_wallet_masked(self) -> str:
        return identifiers.mask_wallet_id(self.payer_wallet_id)

    @property
    def payee_wallet_masked(self) -> str:
        return identifiers.mask_wallet_id(self.payee_wallet_id)


@dataclass(frozen=True)
class PayeeTotal:
    wallet_id: str
    wallet_pk: int  # pages link by it (TracedTransfer.payer_wallet_pk)
    name: str  # masked for persons
    transfer_count: int
    amount_fen: int

    @property
    def wallet_masked(self) -> str:
        return identifiers.mask_wallet_id(self.wallet_id)


@dataclass
class TracePath:
    kind: str  # "transfer", "wallet" or "document"
    key: str  # transfer id, wallet id or document ref
    events: list[TimelineEvent] = field(default_factory=list)
    transfers: list[TracedTransfer] = field(default_factory=list)
    payees: list[PayeeTotal] = field(default_factory=list)
    transfer_count: int = 0  # all matching transfers, even beyond those listed
    transfer_total_fen: int = 0
    events_truncated: bool = False
    shows_documents: bool = False

    @property
    def transfers_truncated(self) -> bool:
        return self.transfer_count > len(self.transfers)

    @property
    def intact(self) -> bool:
        return all(e.chain_status == CHAIN_OK for e in self.events)


# --- the three entry points ------------------------------------------------------------------------


def transfer_path(*, user, transfer_id: int) -> TracePath:
    """A transfer's events, and those of the documents behind it when the user's organization ran it.

    Raises:
        Http404: no such transfer, or the user may not see it (the two look the same).
    """
    try:
        transfer = _transfers_with_parties(visible_transfers(user)).get(pk=int(transfer_id))
    except (Transfer.DoesNotExist, ValueError, TypeError):
        raise Http404("transfer not found")
    path = TracePath(kind="transfer", key=str(transfer.pk))
    path.shows_documents = _sees_documents(user, [transfer])
    condition = Q(subject_type=TRANSFER_SUBJECT, subject_id=str(transfer.pk))
    if path.shows_documents:
        condition |= _document_events(refs=[transfer.batch_ref, transfer.source_ref])
    _fill_events(path, TraceEvent.objects.filter(condition))
    path.transfers = [_traced(transfer)]
    path.transfer_count, path.transfer_total_fen = 1, transfer.amount_fen
    path.payees = _payees(Transfer.objects.filter(pk=transfer.pk))
    return path


def wallet_path(*, user, wallet_id: str = "", wallet_pk: int | None = None) -> TracePath:
    """The transfers into and out of a wallet the user may see, newest first, with their events. The wallet by its
    id (the API, the search box) or by its row (`wallet_pk`: the pages' links, which carry no wallet id).

    Raises:
        Http404: no such wallet, or none of its transfers is visible to the user.
    """
    try:
        wallet = (Wallet.objects.get(pk=wallet_pk) if wallet_pk is not None
                  else Wallet.objects.get(wallet_id=validate_wallet_id(wallet_id)))
    except (InvalidIdentifier, Wallet.DoesNotExist):
        raise Http404("wallet not found")
    transfers = visible_transfers(user).filter(Q(payer=wallet) | Q(payee=wallet))
    if not (visible_wallets(user).filter(pk=wallet.pk).exists() or transfers.exists()):
        raise Http404("wallet not found")
    path = TracePath(kind="wallet", key=wallet.wallet_id)
    listed = _list_transfers(path, transfers)
    path.payees = _payees(transfers.filter(payer=wallet))
    _fill_events(path, TraceEvent.objects.filter(
        subject_type=TRANSFER_SUBJECT, subject_id__in=[str(t.pk) for t in listed]))
    return path


def wallet_pk_of(wallet_id: str) -> int:
    return Wallet.objects.values_list("pk", flat=True).get(wallet_id=wallet_id)


def document_path(*, user, ref: str) -> TracePath:
    """A source document or batch (by its source ref or batch ref): its own events, its transfers
    and where the money went.

    Raises:
        Http404: the user sees no transfer of it (auditors and administrators: no event either).
    """
    ref = (ref or "").strip()
    if not ref or "\x00" in ref:  # no reference holds a NUL (PostgreSQL refuses one even in a query)
        raise Http404("document not found")
    transfers = visible_transfers(user).filter(Q(batch_ref=ref) | Q(source_ref=ref))
    path = TracePath(kind="document", key=ref)
    listed = _list_transfers(path, transfers)
    path.shows_documents = sees_all_organizations(user) or _sees_documents(user, listed)
    condition = Q(subject_type=TRANSFER_SUBJECT, subject_id__in=[str(t.pk) for t in listed])
    if path.shows_documents:
        condition |= _document_events(refs=[ref])
    else:
        # A document named inside a batch (a tax package's number on the package's events): its events in
        # the streams of batches the user's organization ran, and no other stream's (numbers repeat).
        streams = _streams_run_by(user, ref)
        if streams:
            path.shows_documents = True
            condition |= Q(source_ref=ref, stream_key__in=streams) & ~Q(subject_type=TRANSFER_SUBJECT)
        # The stream of a record several organizations draw on (a budget quota's): its events that name a
        # batch the user's organization ran, and none of another's.
        mine = _events_naming_batches_run_by(user, stream=ref)
        if mine.exists():
            path.shows_documents = True
            condition |= Q(pk__in=mine.values("pk"))
    _fill_events(path, TraceEvent.objects.filter(condition))
    if not listed and not path.events:
        raise Http404("document not found")
    path.payees = _payees(transfers)
    return path


def resolve_query(*, user, query: str) -> tuple[str, str] | None:
    """What a search box entry names: ("transfer", id), ("wallet", wallet id) or ("document", ref).

    Tries, in order: an idempotency key, a 16-digit wallet id, a transfer id, a batch or source ref.
    Only what the user may see is found; None otherwise.
    """
    query = (query or "").strip()
    if not query or "\x00" in query:  # no key, id or reference holds a NUL (PostgreSQL refuses one in a query)
        return None
    transfers = visible_transfers(user)
    by_key = transfers.filter(idempotency_key=query).values_list("pk", flat=True).first()
    if by_key is not None:
        return ("transfer", str(by_key))
    if identifiers.WALLET_ID_RE.fullmatch(query):
        try:
            wallet_path(user=user, wallet_id=query)
            return ("wallet", query)
        except Http404:
            pass
    if query.isascii() and query.isdigit() and transfers.filter(pk=int(query)).exists():  # not "²": int() refuses it
        return ("transfer", query)
    if transfers.filter(Q(batch_ref=query) | Q(source_ref=query)).exists():
        return ("document", query)
    if sees_all_organizations(user) and TraceEvent.objects.filter(
        Q(stream_key=query) | (Q(source_ref=query) & ~Q(subject_type=TRANSFER_SUBJECT))
    ).exists():
        return ("document", query)
    return None


# --- building blocks -------------------------------------------------------------------------------


def _transfers_with_parties(qs):
    return qs.select_related("payer", "payee", "organization")


def _sees_documents(user, transfers) -> bool:
    if sees_all_organizations(user):
        return True
    org = user_organization(user)
    return org is not None and any(t.organization_id == org.pk for t in transfers)


def _streams_run_by(user, ref: str) -> list[str]:
    """The streams holding document events with this source ref whose batch the user's organization ran."""
    org = user_organization(user)
    if org is None:
        return []
    streams = list(TraceEvent.objects.filter(source_ref=ref).exclude(subject_type=TRANSFER_SUBJECT)
                   .order_by().values_list("stream_key", flat=True).distinct()[:100])
    ran = visible_transfers(user).filter(organization=org, batch_ref__in=streams)
    return list(ran.order_by("batch_ref").values_list("batch_ref", flat=True).distinct())  # a batch, not its transfers


def _events_naming_batches_run_by(user, *, stream: str):
    """Document events of a stream whose source ref is a batch the user's organization ran (one index probe
    into the transfers' batch index per event of the stream)."""
    org = user_organization(user)
    if org is None:
        return TraceEvent.objects.none()
    ran = visible_transfers(user).filter(organization=org, batch_ref=OuterRef("source_ref"))
    return (TraceEvent.objects.filter(stream_key=stream).exclude(source_ref="")
            .exclude(subject_type=TRANSFER_SUBJECT).filter(Exists(ran)))


def _document_events(*, refs) -> Q:
    """Events about documents (not transfers) in these streams or carrying these source refs."""
    refs = [r for r in refs if r]
    if not refs:
        return Q(pk__in=[])
    return (Q(stream_key__in=refs) | Q(source_ref__in=refs)) & ~Q(subject_type=TRANSFER_SUBJECT)


def _list_transfers(path: TracePath, transfers) -> list[Transfer]:
    totals = transfers.aggregate(total=Sum("amount_fen"), count=Count("pk"))
    path.transfer_count = totals["count"]
    path.transfer_total_fen = totals["total"] or 0
    listed = list(_transfers_with_parties(transfers).order_by("-created_at", "-pk")[:TRANSFER_LIMIT])
    path.transfers = [_traced(t) for t in listed]
    return listed


def _payees(transfers) -> list[PayeeTotal]:
    """Where the money went: one line per payee wallet, largest amount first."""
    rows = (
        transfers.values("payee_id", "payee__wallet_id", "payee__holder_name", "payee__wallet_type")
        .annotate(amount=Sum("amount_fen"), count=Count("pk"))
        .order_by("-amount", "payee__wallet_id")[:TRANSFER_LIMIT]
    )
    return [
        PayeeTotal(wallet_id=row["payee__wallet_id"], wallet_pk=row["payee_id"],
                   name=_holder_name(row["payee__holder_name"], row["payee__wallet_type"]),
                   transfer_count=row["count"], amount_fen=row["amount"] or 0)
        for row in rows
    ]


def _holder_name(name: str, wallet_type: str) -> str:
    personal = wallet_type in (Wallet.Type.PERSONAL, Wallet.Type.PERSONAL_SUB, Wallet.Type.HARDWARE)
    return identifiers.mask_name(name) if personal else name


def _traced(t: Transfer) -> TracedTransfer:
    return TracedTransfer(
        id=t.pk, idempotency_key=t.idempotency_key, state=t.state, amount_fen=t.amount_fen,
        payer_wallet_id=t.payer.wallet_id, payer_wallet_pk=t.payer_id, payer_name=t.payer.masked_holder_name,
        payee_wallet_id=t.payee.wallet_id, payee_wallet_pk=t.payee_id, payee_name=t.payee.masked_holder_name,
        organization=t.organization.name, batch_ref=t.batch_ref, source_ref=t.source_ref,
        created_at=t.created_at, settled_at=t.settled_at,
    )


def _fill_events(path: TracePath, events) -> None:
    rows = list(events.order_by("occurred_at", "stream_key", "seq")[: EVENT_LIMIT + 1])
    path.events_truncated = len(rows) > EVENT_LIMIT
    path.events = timeline(rows[:EVENT_LIMIT])


def timeline(rows: list[TraceEvent]) -> list[TimelineEvent]:
    """Events as a page shows them: personal data masked, each with its chain status."""
    predecessors = _predecessor_hashes(rows)
    checkpointed = _checkpointed_seqs({e.stream_key for e in rows})
    result = []
    for e in rows:
        recomputed = hashlib.sha256(canonical_event_bytes(
            stream_key=e.stream_key, seq=e.seq, kind=e.kind, subject_type=e.subject_type, subject_id=e.subject_id,
            source_ref=e.source_ref, actor=e.actor, amount_fen=e.amount_fen, data=e.data,
            occurred_at=e.occurred_at, prev_hash=e.prev_hash,
        )).hexdigest()
        expected_prev = GENESIS_HASH if e.seq == 1 else predecessors.get((e.stream_key, e.seq - 1))
        if recomputed != e.hash:
            status = CHAIN_ALTERED
        elif expected_prev is None:
            status = CHAIN_GAP
        elif expected_prev != e.prev_hash:
            status = CHAIN_BROKEN
        else:
            status = CHAIN_OK
        result.append(TimelineEvent(
            id=e.pk, stream_key=e.stream_key, seq=e.seq, kind=e.kind, subject_type=e.subject_type,
            subject_id=e.subject_id, source_ref=e.source_ref, actor=e.actor, amount_fen=e.amount_fen,
            data=_as_object(mask_data(e.data)), occurred_at=e.occurred_at, prev_hash=e.prev_hash, hash=e.hash,
            chain_status=status, checkpointed=e.seq <= checkpointed.get(e.stream_key, 0),
        ))
    return result


def _as_object(data) -> dict:
    """Event data as pages and the API show it: an object. Stored data is one always; a row changed by hand to hold
    anything else (a list, null) shows it under "data" (and its chain status says it was altered)."""
    return data if isinstance(data, dict) else {"data": data}


def _predecessor_hashes(rows) -> dict[tuple[str, int], str]:
    wanted = defaultdict(set)
    for e in rows:
        if e.seq > 1:
            wanted[e.stream_key].add(e.seq - 1)
    found = {}
    streams = list(wanted.items())
    for start in range(0, len(streams), 100):
        condition = reduce(or_, (Q(stream_key=key, seq__in=sorted(seqs)) for key, seqs in streams[start:start + 100]))
        for key, seq, digest in TraceEvent.objects.filter(condition).values_list("stream_key", "seq", "hash"):
            found[(key, seq)] = digest
    return found


def _checkpointed_seqs(stream_keys) -> dict[str, int]:
    keys = sorted(stream_keys)
    result = {}
    for start in range(0, len(keys), 500):
        result.update(
            TraceCheckpointHead.objects.filter(stream_key__in=keys[start:start + 500])
            .values("stream_key").annotate(top=Max("seq")).values_list("stream_key", "top")
        )
    return result


_NAME_KEYS = ("name", "holder", "姓名", "户名")
# A transfer's idempotency key, shown whole as the transfer list shows it: the service's keys name documents and
# serials (an 11-digit tax authority code in "tax:<code>:<date>:<serial>" read like a mobile number).
_WHOLE_KEYS = ("key",)


def mask_data(value, key: str = ""):
    """Mask personal data inside an event's data: ids and mobile numbers anywhere but in an idempotency key,
    names by key."""
    if isinstance(value, dict):
        return {k: mask_data(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_data(v, key) for v in value]
    if isinstance(value, str) and key not in _WHOLE_KEYS:
        if any(word in key.lower() for word in _NAME_KEYS):
            return identifiers.mask_name(value)
        return mask_text(value)
    return value
