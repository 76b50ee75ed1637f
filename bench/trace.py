"""Trace throughput: append N events in streams of S, sign a checkpoint, verify everything.

    VAR_DIR=$(mktemp -d) python bench/trace.py --events 300000 --stream-size 1000

Runs on a fresh database (migrated here; point VAR_DIR or DATABASE_URL at a scratch one: the
baseline rows are deleted again, which the PostgreSQL append-only trigger forbids, so run it on
SQLite or a database migrated without the trigger). Prints events/s beside a baseline measured in
the same run: a bare bulk_create of the same rows (append) and a bare read of them (verify).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import production  # noqa: F401  (DJANGO_DEBUG=0, throwaway secrets; bench/ is on sys.path)


sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--stream-size", type=int, default=1_000)
    parser.add_argument("--per-append", type=int, default=100, help="events per append_events call")
    parser.add_argument("--skip-baseline", action="store_true", help="no baseline (large runs: it holds all rows)")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from treasury.trace.models import TraceEvent
    from treasury.trace.services import EventSpec, append_events, make_checkpoint
    from treasury.trace.verification import verify_trace

    call_command("migrate", verbosity=0)
    if TraceEvent.objects.exists():
        raise SystemExit("the trace is not empty: run on a scratch database (VAR_DIR or DATABASE_URL)")
    streams = max(1, args.events // args.stream_size)
    t0 = datetime(2026, 3, 2, tzinfo=dt_timezone.utc)

    def specs(stream: int, start: int, count: int) -> list[EventSpec]:
        return [
            EventSpec(kind="transfer.created", subject_type="treasury.transfer", subject_id=str(stream * 10**6 + n),
                      actor="bench", amount_fen=100 + n, source_ref=f"payroll.line:{stream}-{n}",
                      data={"key": f"K-{stream}-{n}", "payer": "1010000000000001", "payee": f"1010{n:012d}",
                            "purpose": "30101"})
            for n in range(start, start + count)
        ]

    # Baseline: the same rows, bulk_created with no chaining, locking or hashing.
    rows = []
    for stream in range(0 if args.skip_baseline else streams):
        for n, spec in enumerate(specs(stream, 0, args.stream_size), start=1):
            rows.append(TraceEvent(stream_key=f"baseline-{stream}", seq=n, kind=spec.kind,
                                   subject_type=spec.subject_type, subject_id=spec.subject_id,
                                   source_ref=spec.source_ref, actor=spec.actor, amount_fen=spec.amount_fen,
                                   data=spec.data, occurred_at=t0, prev_hash="0" * 64, hash="0" * 64))
    started = time.perf_counter()
    for start in range(0, len(rows), args.per_append):  # the same transactions as the appends below
        with transaction.atomic():
            TraceEvent.objects.bulk_create(rows[start:start + args.per_append])
    baseline_insert = time.perf_counter() - started
    baseline_rows = len(rows)
    started = time.perf_counter()
    everything = TraceEvent.objects.order_by("stream_key", "seq").values_list()
    read = 0 if args.skip_baseline else sum(1 for _ in everything.iterator(chunk_size=5000))
    baseline_read = time.perf_counter() - started
    TraceEvent.objects.filter(stream_key__startswith="baseline-").delete()
    del rows

    started = time.perf_counter()
    for stream in range(streams):
        for start in range(0, args.stream_size, args.per_append):
            with transaction.atomic():
                append_events(stream_key=f"BATCH-{stream:06d}",
                              events=specs(stream, start, min(args.per_append, args.stream_size - start)),
                              now=t0 + timedelta(seconds=start))
    append_seconds = time.perf_counter() - started
    total = TraceEvent.objects.count()

    started = time.perf_counter()
    checkpoint = make_checkpoint(now=t0 + timedelta(hours=1))
    checkpoint_seconds = time.perf_counter() - started

    started = time.perf_counter()
    report = verify_trace()
    verify_seconds = time.perf_counter() - started

    print(f"database: {connection.vendor}; {total:,} events in {streams:,} streams of {args.stream_size:,}, "
          f"{args.per_append} per append")
    print(f"append:     {total / append_seconds:>10,.0f} events/s ({append_seconds:.1f} s)"
          + ("" if args.skip_baseline else f"; baseline bare bulk_create {baseline_rows / baseline_insert:,.0f} rows/s; "
             f"ratio {(total / append_seconds) / (baseline_rows / baseline_insert):.2f}"))
    print(f"checkpoint: {checkpoint_seconds:.2f} s over {checkpoint.stream_count:,} streams (#{checkpoint.number})")
    print(f"verify:     {report.events / verify_seconds:>10,.0f} events/s ({verify_seconds:.1f} s)"
          + ("" if args.skip_baseline else f"; baseline bare read {read / baseline_read:,.0f} rows/s; "
             f"ratio {(report.events / verify_seconds) / (read / baseline_read):.2f}"))
    print(report.summary())
    if not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
