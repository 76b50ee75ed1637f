"""manage.py verify_trace / trace_checkpoint, the Celery task, the Merkle tree, the PostgreSQL guard."""
import hashlib
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from treasury.trace.merkle import MerkleBuilder, leaf_hash, merkle_root
from treasury.trace.models import TraceCheckpoint, TraceEvent

from .conftest import T0, append, spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_streams():
    append("C-1", [spec(1), spec(2), spec(3)])
    append("C-2", [spec(4), spec(5)])


def _exit_code(*argv) -> int:
    """The exit code manage.py gives: run_from_argv exits with a CommandError's returncode.
    (Not run through ManagementUtility itself: it closes the test's database connection.)"""
    try:
        call_command(*argv)
    except CommandError as exc:
        print(f"CommandError: {exc}", file=sys.stderr)  # what run_from_argv prints before exiting
        return exc.returncode
    return 0


def test_verify_trace_ok_prints_one_summary_line_and_exits_0(two_streams, capsys):
    call_command("trace_checkpoint", stdout=StringIO())
    assert _exit_code("verify_trace") == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines() == [
        "trace OK: 2 streams, 5 events, 1 checkpoints (2 recorded heads, latest #1 root "
        f"{TraceCheckpoint.objects.get().merkle_root[:16]})"]


def test_verify_trace_names_problems_and_exits_1(two_streams, tamper, capsys):
    victim = TraceEvent.objects.get(stream_key="C-1", seq=2)
    tamper("UPDATE trace_traceevent SET amount_fen = 5 WHERE id = %s", [victim.pk])
    assert _exit_code("verify_trace") == 1
    err = capsys.readouterr().err
    assert f"[event_altered] stream 'C-1', seq 2, event id {victim.pk}: content" in err
    assert "trace FAILED: 1 problems" in err


def test_verify_trace_command_raises_with_return_code(two_streams, tamper):
    tamper("DELETE FROM trace_traceevent WHERE stream_key = 'C-2' AND seq = 1")
    err = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_trace", stderr=err)
    assert raised.value.returncode == 1
    assert "[stream_empty]" not in err.getvalue() and "[events_missing] stream 'C-2', seq 2" in err.getvalue()
    call_command("verify_trace", "--stream", "C-1", stdout=StringIO())  # the other stream is fine


def test_trace_checkpoint_command_and_idle_run(two_streams):
    out = StringIO()
    call_command("trace_checkpoint", stdout=out)
    assert out.getvalue().startswith("checkpoint #1: 2 streams, 5 events, 2 heads changed, root ")
    out = StringIO()
    call_command("trace_checkpoint", stdout=out)
    assert "nothing to sign" in out.getvalue()
    assert TraceCheckpoint.objects.count() == 1


def test_celery_task_is_registered_by_its_scheduled_name(two_streams, settings):
    from config.celery import app
    from treasury.trace.tasks import trace_checkpoint_task

    assert trace_checkpoint_task.name == "treasury.trace_checkpoint"
    assert settings.CELERY_BEAT_SCHEDULE["trace-checkpoint"]["task"] in app.tasks
    # get(disable_sync_subtasks=False): Celery's no-join-inside-a-task guard is one flag for the whole process,
    # set while the live server's thread runs an eager task for a sandbox's call.
    assert trace_checkpoint_task.apply().get(disable_sync_subtasks=False) == 1
    assert trace_checkpoint_task.apply().get(disable_sync_subtasks=False) is None  # run twice: nothing new to sign


# --- Merkle tree ------------------------------------------------------------------------------------


def _rfc6962(leaves):
    """Reference: the recursive definition of RFC 6962 section 2.1."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc6962(leaves[:k]) + _rfc6962(leaves[k:])).digest()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 100])
def test_streaming_merkle_root_matches_the_recursive_definition(n):
    leaves = [leaf_hash(stream_key=f"S{i}", seq=i + 1, head_hash=f"{i:064x}") for i in range(n)]
    assert merkle_root(leaves) == _rfc6962(leaves).hex()


def test_merkle_leaf_is_sha256_of_key_seq_hash():
    assert leaf_hash(stream_key="B-1", seq=7, head_hash="ab" * 32) == hashlib.sha256(
        ("B-1|7|" + "ab" * 32).encode()).digest()
    one, other = MerkleBuilder(), MerkleBuilder()
    one.add_head(stream_key="a", seq=1, head_hash="0" * 64)
    other.add_head(stream_key="a", seq=2, head_hash="0" * 64)
    assert one.root() != other.root()


def test_stream_keys_are_ordered_by_code_point_in_the_database():
    """Merkle leaves follow Python's order; the database must hand rows back in the same order."""
    for key in ("b", "B", "a-2", "a_1", "甲", "Z", "a"):
        append(key, [spec(1)])
    from treasury.trace.models import TraceStream
    from treasury.trace.ordering import key_order

    report_keys = list(TraceStream.objects.order_by(key_order("key")).values_list("key", flat=True))
    assert report_keys == sorted(report_keys)
    from treasury.trace.services import make_checkpoint
    from treasury.trace.verification import verify_trace

    make_checkpoint(now=T0 + timedelta(minutes=1))
    assert verify_trace().ok


# --- PostgreSQL append-only guard ---------------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the append-only triggers exist on PostgreSQL only")
def test_postgresql_refuses_update_and_delete_of_trace_rows(two_streams):
    for sql in ("UPDATE trace_traceevent SET actor = 'x'", "DELETE FROM trace_traceevent"):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)
    assert TraceEvent.objects.filter(actor="x").count() == 0
