"""The whole path: transfer -> events, document -> transfers -> payee wallets, scoped to the user."""
from datetime import timedelta

import pytest
from django.http import Http404

from treasury.trace import selectors
from treasury.trace.models import TraceEvent

pytestmark = pytest.mark.django_db


def test_transfer_path_shows_its_events_in_order_with_the_batch_document(world):
    path = selectors.transfer_path(user=world.user_a, transfer_id=world.transfer_a.pk)
    assert [e.kind for e in path.events] == [
        "payroll.batch.approved", "transfer.created", "transfer.submitted", "transfer.settled"]
    assert [e.actor for e in path.events] == ["approver_a", "clerk_a", "system", "operator"]
    assert {e.transfer_id for e in path.events[1:]} == {world.transfer_a.pk}
    assert all(e.chain_status == selectors.CHAIN_OK for e in path.events) and path.intact
    assert path.shows_documents
    (transfer,) = path.transfers
    assert (transfer.amount_fen, transfer.payee_name, transfer.payee_wallet_masked) == (
        1_234_567, "张*丰", "1010********0003")
    assert [(p.wallet_id, p.amount_fen, p.transfer_count) for p in path.payees] == [("1010000000000003", 1_234_567, 1)]


def test_event_data_is_masked(world):
    path = selectors.transfer_path(user=world.auditor, transfer_id=world.transfer_a.pk)
    created = next(e for e in path.events if e.kind == "transfer.created")
    assert created.data == {"key": "PAY-A-0001", "payer": "1010********0001", "payee": "1010********0003"}
    assert selectors.mask_data({"holder_name": "张三丰", "ids": ["11010519491231002X"], "mobile": "13912345678"}) == {
        "holder_name": "张*丰", "ids": ["110***********002X"], "mobile": "139****5678"}
    # An idempotency key is shown whole, as the transfer list shows it: a tax authority's 11-digit code is no
    # mobile number.
    assert selectors.mask_data({"key": "tax:13701000000:20261127:00000001", "memo": "13701000000"}) == {
        "key": "tax:13701000000:20261127:00000001", "memo": "137****0000"}


def test_another_organizations_transfer_is_not_found(world):
    with pytest.raises(Http404):
        selectors.transfer_path(user=world.user_a, transfer_id=world.transfer_b.pk)
    with pytest.raises(Http404):
        selectors.transfer_path(user=world.nobody, transfer_id=world.transfer_a.pk)
    assert selectors.transfer_path(user=world.auditor, transfer_id=world.transfer_b.pk).transfers[0].id == world.transfer_b.pk


def test_payee_organization_sees_the_payment_but_not_the_payers_documents(world):
    path = selectors.transfer_path(user=world.user_b, transfer_id=world.transfer_a2.pk)
    assert not path.shows_documents
    assert [e.kind for e in path.events] == ["transfer.created", "transfer.submitted"]


def test_document_path_from_batch_ref_lists_transfers_and_payees(world):
    path = selectors.document_path(user=world.user_a, ref="BATCH-A")
    assert {t.id for t in path.transfers} == {world.transfer_a.pk, world.transfer_a2.pk}
    assert (path.transfer_count, path.transfer_total_fen) == (2, 1_284_567)
    assert [(p.wallet_id, p.amount_fen) for p in path.payees] == [("1010000000000003", 1_234_567),
                                                                 ("1010000000000002", 50_000)]
    assert len(path.events) == 6 and path.events[0].kind == "payroll.batch.approved"
    # seq order inside the stream, time order across it
    assert [e.seq for e in path.events] == [1, 2, 3, 4, 5, 6]


def test_document_path_from_source_ref_and_scoping(world):
    path = selectors.document_path(user=world.user_a, ref="payroll.line:1")
    assert [t.id for t in path.transfers] == [world.transfer_a.pk]
    with pytest.raises(Http404):
        selectors.document_path(user=world.user_a, ref="BATCH-B")
    with pytest.raises(Http404):
        selectors.document_path(user=world.user_a, ref="no-such-thing")
    # org B only received from BATCH-A: sees that payment, not org A's batch approval
    path_b = selectors.document_path(user=world.user_b, ref="BATCH-A")
    assert [t.id for t in path_b.transfers] == [world.transfer_a2.pk]
    assert {e.kind for e in path_b.events} == {"transfer.created", "transfer.submitted"}


def test_wallet_path_shows_only_visible_transfers(world):
    staff = world.staff_wallet.wallet_id
    assert {t.id for t in selectors.wallet_path(user=world.auditor, wallet_id=staff).transfers} == {
        world.transfer_a.pk, world.transfer_b.pk}
    path_a = selectors.wallet_path(user=world.user_a, wallet_id=staff)
    assert [t.id for t in path_a.transfers] == [world.transfer_a.pk]
    assert {e.transfer_id for e in path_a.events} == {world.transfer_a.pk}
    own = selectors.wallet_path(user=world.user_a, wallet_id=world.wallet_a.wallet_id)
    assert [(p.wallet_id, p.amount_fen) for p in own.payees] == [("1010000000000003", 1_234_567),
                                                                ("1010000000000002", 50_000)]
    with pytest.raises(Http404):
        selectors.wallet_path(user=world.nobody, wallet_id=staff)
    with pytest.raises(Http404):
        selectors.wallet_path(user=world.user_a, wallet_id="not-a-wallet")


def test_timeline_marks_an_altered_event(world, tamper):
    victim = TraceEvent.objects.get(stream_key="BATCH-A", seq=4)
    tamper("UPDATE trace_traceevent SET amount_fen = 1 WHERE id = %s", [victim.pk])
    path = selectors.document_path(user=world.auditor, ref="BATCH-A")
    statuses = {e.seq: e.chain_status for e in path.events}
    assert statuses[4] == selectors.CHAIN_ALTERED
    assert {s for seq, s in statuses.items() if seq != 4} == {selectors.CHAIN_OK}
    assert not path.intact


def test_timeline_marks_a_gap_and_a_broken_link(world, tamper):
    tamper("DELETE FROM trace_traceevent WHERE stream_key = 'BATCH-A' AND seq = 2")
    tamper("UPDATE trace_traceevent SET prev_hash = %s WHERE stream_key = 'BATCH-A' AND seq = 5", ["0" * 64])
    statuses = {e.seq: e.chain_status for e in selectors.document_path(user=world.auditor, ref="BATCH-A").events}
    assert statuses[3] == selectors.CHAIN_GAP
    assert statuses[5] in (selectors.CHAIN_ALTERED, selectors.CHAIN_BROKEN)


def test_checkpointed_flag(world):
    from treasury.trace.services import make_checkpoint

    from .conftest import T0, append, spec

    assert not any(e.checkpointed for e in selectors.document_path(user=world.auditor, ref="BATCH-B").events)
    make_checkpoint(now=T0)
    append("BATCH-B", [spec(1, subject_id=str(world.transfer_b.pk), kind="transfer.returned")],
           now=T0 + timedelta(minutes=5))
    events = selectors.document_path(user=world.auditor, ref="BATCH-B").events
    assert [e.checkpointed for e in events] == [True, True, True, False]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("PAY-A-0001", ("transfer", "transfer_a")),
        ("1010000000000003", ("wallet", "1010000000000003")),
        ("BATCH-A", ("document", "BATCH-A")),
        ("payroll.line:2", ("document", "payroll.line:2")),
        ("PAY-B-0001", None),
        ("BATCH-B", None),
        ("1010000000000009", None),
        ("", None),
    ],
)
def test_resolve_query(world, query, expected):
    found = selectors.resolve_query(user=world.user_a, query=query)
    if expected and expected[1] == "transfer_a":
        expected = ("transfer", str(world.transfer_a.pk))
    assert found == expected


def test_resolve_transfer_id(world):
    assert selectors.resolve_query(user=world.user_a, query=str(world.transfer_a.pk)) == (
        "transfer", str(world.transfer_a.pk))
    assert selectors.resolve_query(user=world.user_a, query=str(world.transfer_b.pk)) is None
