"""Appending chains events; verification finds every kind of change and names it."""
from datetime import timedelta

import pytest
from django.db import transaction

from treasury.trace.models import TraceCheckpoint, TraceCheckpointHead, TraceEvent, TraceStream
from treasury.trace.services import GENESIS_HASH, EventSpec, append_events, event_hash, make_checkpoint
from treasury.trace.verification import verify_trace

from .conftest import T0, append, spec

pytestmark = pytest.mark.django_db


def _events(stream_key):
    return list(TraceEvent.objects.filter(stream_key=stream_key).order_by("seq"))


def _only(report, code):
    found = [p for p in report.problems if p.code == code]
    assert found, f"no {code} in {[str(p) for p in report.problems]}"
    return found


@pytest.fixture
def streams():
    """Two streams of five events each, appended in several calls."""
    for n in range(1, 4):
        append("S-ONE", [spec(n)], now=T0 + timedelta(seconds=n))
    append("S-TWO", [spec(10), spec(11), spec(12)], now=T0)
    append("S-ONE", [spec(4), spec(5)], now=T0 + timedelta(seconds=9))
    append("S-TWO", [spec(13), spec(14)], now=T0 + timedelta(seconds=9))
    return ["S-ONE", "S-TWO"]


# --- appending ---------------------------------------------------------------------------------


def test_appends_chain_within_each_stream_and_keep_the_head(streams):
    for key in streams:
        events = _events(key)
        assert [e.seq for e in events] == [1, 2, 3, 4, 5]
        assert events[0].prev_hash == GENESIS_HASH
        for before, after in zip(events, events[1:]):
            assert after.prev_hash == before.hash
        for e in events:
            assert e.hash == event_hash(
                stream_key=e.stream_key, seq=e.seq, kind=e.kind, subject_type=e.subject_type,
                subject_id=e.subject_id, source_ref=e.source_ref, actor=e.actor, amount_fen=e.amount_fen,
                data=e.data, occurred_at=e.occurred_at, prev_hash=e.prev_hash,
            )
        head = TraceStream.objects.get(key=key)
        assert (head.head_seq, head.head_hash) == (5, events[-1].hash)
    # Streams are independent chains: same content in another stream hashes differently.
    assert _events("S-ONE")[0].hash != _events("S-TWO")[0].hash


@pytest.mark.django_db(transaction=True)
def test_append_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="inside transaction.atomic"):
        append_events(stream_key="S", events=[spec(1)], now=T0)


def test_untouched_trace_verifies(streams):
    make_checkpoint(now=T0 + timedelta(minutes=10))
    append("S-ONE", [spec(6)], now=T0 + timedelta(minutes=11))
    report = verify_trace()
    assert report.ok, [str(p) for p in report.problems]
    assert (report.streams, report.events, report.checkpoints) == (2, 11, 1)
    assert report.summary().startswith("trace OK: 2 streams, 11 events, 1 checkpoints")


# --- altered events ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "column, value",
    [
        ("kind", "transfer.failed"),
        ("subject_type", "payroll.line"),
        ("subject_id", "999"),
        ("source_ref", "voucher:forged"),
        ("actor", "somebody_else"),
        ("amount_fen", 999_999),
        ("amount_fen", None),
        ("data", '{"n": 3, "payee": "1010000000000009"}'),
        ("occurred_at", "2026-03-02 02:00:00"),
    ],
)
def test_altered_field_is_named(streams, tamper, column, value):
    target = _events("S-ONE")[2]
    assert tamper(f"UPDATE trace_traceevent SET {column} = %s WHERE id = %s", [value, target.pk]) == 1
    report = verify_trace()
    assert not report.ok
    (problem,) = report.problems
    assert (problem.code, problem.stream_key, problem.seq, problem.event_id) == ("event_altered", "S-ONE", 3, target.pk)
    assert "event altered" in problem.message


def test_altered_event_with_recomputed_hash_breaks_the_next_link(streams, tamper):
    target = _events("S-ONE")[1]
    fields = dict(stream_key="S-ONE", seq=2, kind=target.kind, subject_type=target.subject_type,
                  subject_id=target.subject_id, source_ref=target.source_ref, actor=target.actor, amount_fen=1,
                  data=target.data, occurred_at=target.occurred_at, prev_hash=target.prev_hash)
    tamper("UPDATE trace_traceevent SET amount_fen = 1, hash = %s WHERE id = %s", [event_hash(**fields), target.pk])
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.stream_key, problem.seq) == ("link_broken", "S-ONE", 3)
    assert "seq 2 rewritten" in problem.message


# --- deleted events ----------------------------------------------------------------------------


def test_deleted_middle_event_is_named(streams, tamper):
    victim = _events("S-TWO")[2]
    tamper("DELETE FROM trace_traceevent WHERE id = %s", [victim.pk])
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.stream_key, problem.seq) == ("events_missing", "S-TWO", 4)
    assert "seq 3 missing" in problem.message


def test_deleted_tail_is_caught_by_the_head_row(streams, tamper):
    victim = _events("S-TWO")[-1]
    tamper("DELETE FROM trace_traceevent WHERE id = %s", [victim.pk])
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.stream_key, problem.seq) == ("head_mismatch", "S-TWO", 4)
    assert "head row says seq 5" in problem.message


def test_deleted_tail_with_head_row_rewound_is_caught_by_the_checkpoint(streams, tamper):
    make_checkpoint(now=T0 + timedelta(minutes=10))
    events = _events("S-TWO")
    tamper("DELETE FROM trace_traceevent WHERE id IN (%s, %s)", [events[-1].pk, events[-2].pk])
    TraceStream.objects.filter(key="S-TWO").update(head_seq=3, head_hash=events[2].hash)
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.stream_key, problem.seq, problem.checkpoint) == ("checkpoint_truncated", "S-TWO", 5, 1)
    assert "now ends at seq 3" in problem.message


def test_deleted_whole_stream_after_a_checkpoint_is_caught(streams, tamper):
    make_checkpoint(now=T0 + timedelta(minutes=10))
    tamper("DELETE FROM trace_traceevent WHERE stream_key = %s", ["S-ONE"])
    TraceStream.objects.filter(key="S-ONE").delete()
    report = verify_trace()
    assert {p.code for p in report.problems} == {"checkpoint_truncated"}
    assert report.problems[0].stream_key == "S-ONE"


def test_head_row_without_events_is_named(streams, tamper):
    tamper("DELETE FROM trace_traceevent WHERE stream_key = %s", ["S-ONE"])
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.stream_key) == ("stream_empty", "S-ONE")


def test_events_without_head_row_are_named(streams):
    TraceStream.objects.filter(key="S-TWO").delete()
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.stream_key) == ("head_missing", "S-TWO")


# --- reordered and inserted events ---------------------------------------------------------------


def test_swapped_events_are_named_reordered(streams, tamper):
    events = _events("S-ONE")
    second, third = events[1], events[2]
    tamper("UPDATE trace_traceevent SET seq = -1 WHERE id = %s", [second.pk])
    tamper("UPDATE trace_traceevent SET seq = 2 WHERE id = %s", [third.pk])
    tamper("UPDATE trace_traceevent SET seq = 3 WHERE id = %s", [second.pk])
    report = verify_trace()
    links = _only(report, "link_broken")
    assert [(p.stream_key, p.seq) for p in links] == [("S-ONE", 2), ("S-ONE", 3), ("S-ONE", 4)]
    assert all("events reordered" in p.message for p in links)
    assert {p.event_id for p in _only(report, "event_altered")} == {second.pk, third.pk}


def test_reordered_events_with_recomputed_hashes_are_caught_by_links(streams, tamper):
    """Swap two events and recompute their content hashes (anyone can): the links still break."""
    events = _events("S-ONE")
    second, third = events[1], events[2]
    for event, new_seq in ((second, 3), (third, 2)):
        digest = event_hash(stream_key="S-ONE", seq=new_seq, kind=event.kind, subject_type=event.subject_type,
                            subject_id=event.subject_id, source_ref=event.source_ref, actor=event.actor,
                            amount_fen=event.amount_fen, data=event.data, occurred_at=event.occurred_at,
                            prev_hash=event.prev_hash)
        tamper("UPDATE trace_traceevent SET seq = %s, hash = %s WHERE id = %s", [-new_seq, digest, event.pk])
    tamper("UPDATE trace_traceevent SET seq = -seq WHERE stream_key = %s AND seq < 0", ["S-ONE"])
    report = verify_trace()
    assert "event_altered" not in report.codes()
    links = _only(report, "link_broken")
    assert {(p.stream_key, p.seq) for p in links} >= {("S-ONE", 2), ("S-ONE", 3)}
    # The moved-back event still links to its old predecessor, which names the reordering.
    assert any("seq 3" in str(p) and "hash of seq 1 (events reordered)" in p.message for p in links), links


def test_inserted_event_is_named(streams, tamper):
    events = _events("S-ONE")
    # Make room after seq 2, then insert a well-formed event there, hashed and linked to seq 2.
    tamper("UPDATE trace_traceevent SET seq = -(seq + 1) WHERE stream_key = %s AND seq >= 3", ["S-ONE"])
    tamper("UPDATE trace_traceevent SET seq = -seq WHERE stream_key = %s AND seq < 0", ["S-ONE"])
    fields = dict(stream_key="S-ONE", seq=3, kind="transfer.settled", subject_type="treasury.transfer",
                  subject_id="3", source_ref="", actor="operator", amount_fen=100, data={},
                  occurred_at=events[1].occurred_at, prev_hash=events[1].hash)
    TraceEvent.objects.create(**fields, hash=event_hash(**fields))
    report = verify_trace()
    inserted = [p for p in report.problems if p.code == "link_broken"]
    assert [(p.seq, "event inserted" in p.message) for p in inserted] == [(4, True)]
    # The renumbered events no longer match their hashes, and the head row is behind.
    assert {p.seq for p in _only(report, "event_altered")} == {4, 5, 6}
    assert _only(report, "head_mismatch")[0].seq == 6


def test_event_appended_outside_the_service_is_named(streams):
    last = _events("S-TWO")[-1]
    fields = dict(stream_key="S-TWO", seq=6, kind="transfer.settled", subject_type="treasury.transfer",
                  subject_id="14", source_ref="", actor="operator", amount_fen=100, data={},
                  occurred_at=last.occurred_at, prev_hash=last.hash)
    TraceEvent.objects.create(**fields, hash=event_hash(**fields))
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.seq) == ("head_mismatch", 6)
    assert "appended outside the service" in problem.message


# --- rewritten streams and checkpoints -----------------------------------------------------------


def _rewrite_stream(key, tamper, *, amount_fen):
    """Recompute a whole stream consistently, head row included: only a checkpoint can tell."""
    prev = GENESIS_HASH
    for event in _events(key):
        fields = dict(stream_key=key, seq=event.seq, kind=event.kind, subject_type=event.subject_type,
                      subject_id=event.subject_id, source_ref=event.source_ref, actor=event.actor,
                      amount_fen=amount_fen, data=event.data, occurred_at=event.occurred_at, prev_hash=prev)
        digest = event_hash(**fields)
        tamper("UPDATE trace_traceevent SET amount_fen = %s, prev_hash = %s, hash = %s WHERE id = %s",
               [amount_fen, prev, digest, event.pk])
        prev = digest
    TraceStream.objects.filter(key=key).update(head_hash=prev)


def test_rewritten_stream_without_checkpoint_goes_unnoticed_and_with_one_is_named(streams, tamper):
    _rewrite_stream("S-ONE", tamper, amount_fen=1)
    assert verify_trace().ok  # why checkpoints exist

    _rewrite_stream("S-ONE", tamper, amount_fen=100)  # undo, then checkpoint, then rewrite
    make_checkpoint(now=T0 + timedelta(minutes=10))
    _rewrite_stream("S-ONE", tamper, amount_fen=1)
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.stream_key, problem.seq, problem.checkpoint) == ("checkpoint_mismatch", "S-ONE", 5, 1)
    assert "stream rewritten after the checkpoint" in problem.message


def test_rewrite_is_caught_by_every_checkpoint_that_recorded_a_head(streams, tamper):
    make_checkpoint(now=T0 + timedelta(minutes=10))
    append("S-ONE", [spec(6)], now=T0 + timedelta(minutes=11))
    make_checkpoint(now=T0 + timedelta(minutes=20))
    _rewrite_stream("S-ONE", tamper, amount_fen=7)
    report = verify_trace()
    assert {(p.code, p.seq, p.checkpoint) for p in report.problems} == {
        ("checkpoint_mismatch", 5, 1), ("checkpoint_mismatch", 6, 2)}


def test_tampered_checkpoint_signature_is_named(streams, tamper):
    checkpoint = make_checkpoint(now=T0 + timedelta(minutes=10))
    forged = "A" * 86 + "=="
    tamper("UPDATE trace_tracecheckpoint SET signature = %s WHERE id = %s", [forged, checkpoint.pk])
    report = verify_trace()
    (problem,) = report.problems
    assert (problem.code, problem.checkpoint) == ("checkpoint_signature", 1)
    assert "does not verify" in problem.message


def test_checkpoint_with_altered_root_fails_its_signature(streams, tamper):
    checkpoint = make_checkpoint(now=T0 + timedelta(minutes=10))
    tamper("UPDATE trace_tracecheckpoint SET merkle_root = %s WHERE id = %s", ["f" * 64, checkpoint.pk])
    report = verify_trace()
    assert {(p.code, p.checkpoint) for p in report.problems} == {("checkpoint_signature", 1), ("checkpoint_root", 1)}


def test_checkpoint_signed_by_another_key_is_named(streams, settings, tmp_path):
    from treasury import keys

    make_checkpoint(now=T0 + timedelta(minutes=10))
    settings.SERVICE_SIGNING_KEY_FILE = tmp_path / "other.pem"
    keys.service_private_key.cache_clear()
    report = verify_trace()
    (problem,) = report.problems
    assert problem.code == "checkpoint_signature" and "not the service key" in problem.message


def test_tampered_checkpoint_heads_are_named(streams, tamper):
    checkpoint = make_checkpoint(now=T0 + timedelta(minutes=10))
    head = TraceCheckpointHead.objects.get(checkpoint=checkpoint, stream_key="S-ONE")
    # Rewind the recorded head along with a cut of the stream: the signed root over the heads catches it.
    tamper("UPDATE trace_tracecheckpointhead SET seq = 4, hash = %s WHERE id = %s",
           [_events("S-ONE")[3].hash, head.pk])
    report = verify_trace()
    assert {(p.code, p.checkpoint) for p in report.problems} == {("checkpoint_heads", 1), ("checkpoint_root", 1)}


def test_deleted_middle_checkpoint_breaks_the_chain(streams, tamper):
    for minute in (10, 20, 30):
        append("S-ONE", [spec(minute)], now=T0 + timedelta(minutes=minute - 1))
        make_checkpoint(now=T0 + timedelta(minutes=minute))
    middle = TraceCheckpoint.objects.get(number=2)
    tamper("DELETE FROM trace_tracecheckpointhead WHERE checkpoint_id = %s", [middle.pk])
    tamper("DELETE FROM trace_tracecheckpoint WHERE id = %s", [middle.pk])
    report = verify_trace()
    chain = _only(report, "checkpoint_chain")
    assert [p.checkpoint for p in chain] == [3, 3]
    assert "#2 missing" in chain[0].message


# --- one stream ---------------------------------------------------------------------------------


def test_single_stream_verification_reports_only_that_stream(streams, tamper):
    tamper("DELETE FROM trace_traceevent WHERE stream_key = %s AND seq = 2", ["S-ONE"])
    assert verify_trace(stream_key="S-TWO").ok
    report = verify_trace(stream_key="S-ONE")
    assert [(p.code, p.seq) for p in report.problems] == [("events_missing", 3)]
    assert report.summary().startswith("stream 'S-ONE' FAILED: 1 problems")


def test_problem_list_is_capped_but_all_are_counted(streams, tamper):
    tamper("UPDATE trace_traceevent SET actor = 'x'")
    report = verify_trace(max_problems=3)
    assert (len(report.problems), report.problem_count) == (3, 10)


def test_events_appended_during_verification_are_not_problems(streams):
    """A head row read after an append but events read before it: re-read, not reported."""
    from treasury.trace import verification

    original = verification._verify_stream

    def append_midway(key, head_row, stream_events, recorded, report, recheck):
        result = original(key, head_row, stream_events, recorded, report, recheck)
        if key == "S-ONE":
            with transaction.atomic():
                append_events(stream_key="S-ONE", events=[spec(99)], now=T0 + timedelta(hours=1))
        return result

    verification._verify_stream = append_midway
    try:
        # Simulate the race: the head row we hold says seq 5, the stream has grown to 6 since.
        report = verify_trace()
    finally:
        verification._verify_stream = original
    assert report.ok, [str(p) for p in report.problems]


def test_checkpoint_root_is_reproducible_and_signed(streams):
    from treasury import keys
    from treasury.trace.merkle import MerkleBuilder
    from treasury.trace.services import checkpoint_body_of

    checkpoint = make_checkpoint(now=T0 + timedelta(minutes=10))
    builder = MerkleBuilder()
    for stream in TraceStream.objects.order_by("key"):
        builder.add_head(stream_key=stream.key, seq=stream.head_seq, head_hash=stream.head_hash)
    assert checkpoint.merkle_root == builder.root()
    assert (checkpoint.number, checkpoint.stream_count, checkpoint.event_count) == (1, 2, 10)
    assert keys.verify(checkpoint_body_of(checkpoint), checkpoint.signature)
    assert checkpoint.prev_body_hash == GENESIS_HASH


def test_checkpoint_stores_only_moved_heads_and_skips_when_idle(streams):
    first = make_checkpoint(now=T0 + timedelta(minutes=10))
    assert make_checkpoint(now=T0 + timedelta(minutes=20)) is None
    append("S-TWO", [spec(20)], now=T0 + timedelta(minutes=21))
    second = make_checkpoint(now=T0 + timedelta(minutes=30))
    assert sorted(first.heads.values_list("stream_key", "seq")) == [("S-ONE", 5), ("S-TWO", 5)]
    assert list(second.heads.values_list("stream_key", "seq")) == [("S-TWO", 6)]
    assert (second.number, second.stream_count, second.event_count, second.changed_count) == (2, 2, 11, 1)
    assert verify_trace().ok


def test_checkpoint_refuses_a_head_behind_an_earlier_checkpoint(streams):
    from treasury.trace.services import TraceIntegrityError

    make_checkpoint(now=T0 + timedelta(minutes=10))
    TraceStream.objects.filter(key="S-ONE").update(head_seq=2)
    with pytest.raises(TraceIntegrityError, match="behind checkpointed seq 5"):
        make_checkpoint(now=T0 + timedelta(minutes=20))


def test_empty_data_and_null_amount_round_trip(db):
    append("S-E", [EventSpec(kind="k", subject_type="x.y", subject_id="1", amount_fen=None, data={})])
    append("S-E", [EventSpec(kind="k", subject_type="x.y", subject_id="2", amount_fen=0,
                             data={"名字": "张*", "nested": {"b": [1, 2], "a": True}})])
    assert verify_trace().ok


def test_event_data_is_hashed_as_json_dumps_writes_it():
    """The text an event's hash covers is json.dumps(data, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False), whatever encoder writes it: a stored chain stays verifiable."""
    import json

    from treasury.trace.services import encode_event_data

    for data in ({"operator_txn_id": "EC0000000001"},
                 {"key": "tax:13701000000:20261126:00000001", "payer": "3000000000000001", "submitted": True},
                 {"b": "引号\" 反斜杠\\ 控制\u001f\n", "a": None, "c": [1, {"z": -2, "y": 10 ** 20}], "d": False},
                 {"u": "\u2028é"}, {"amount": 1.5}, {}):
        assert encode_event_data(data) == (json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                                           if data else "{}")


@pytest.mark.parametrize("stored", ["[]", "null", "false", "0", '""'])
def test_data_written_empty_and_replaced_by_another_empty_value_is_named(tamper, stored):
    """An event written without data stores {}; a row changed to hold [] or null (no event is written so) is
    named altered, though json reads both as "nothing"."""
    append("S-E", [EventSpec(kind="k", subject_type="x.y", subject_id="1", amount_fen=None, data={}),
                   EventSpec(kind="k", subject_type="x.y", subject_id="2", amount_fen=None, data={})])
    make_checkpoint(now=T0 + timedelta(minutes=1))
    tamper("UPDATE trace_traceevent SET data = %s WHERE stream_key = 'S-E' AND seq = 2", [stored])
    report = verify_trace()
    assert not report.ok and report.codes() == {"event_altered"}
    assert _only(report, "event_altered")[0].seq == 2
