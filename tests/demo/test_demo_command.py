"""`make demo` is one of the README's two commands: here it runs as there (migrate, then `manage.py demo`), in a
process of its own with its own VAR_DIR (a fresh SQLite database, media, keys), against its own sandboxes, and
ends with its proofs (ledger, trace, receipts). A change that breaks a step of it fails this test."""
import json
import os
import sqlite3
from contextlib import closing
import subprocess
import sys
from pathlib import Path

from treasury.trace.labels import detail_labels, event_labels

ROOT = Path(__file__).resolve().parents[2]


def test_the_demo_runs_end_to_end_and_proves_itself(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "MEDIA_ROOT", "CELERY_BROKER_URL")}
    env.update(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings")
    for command in (["migrate", "--verbosity", "0"], ["demo"]):
        done = subprocess.run([sys.executable, str(ROOT / "manage.py"), *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = done.stdout
    assert "1. payroll file for" in text and "rejected" in text
    assert "39 lines paid" in text and "1 held" in text  # every line but the frozen wallet's
    assert "ledger OK" in text and "trace OK" in text and "verifies: True" in text
    assert "my tax: flex paid tax voucher" in text and "90000" in text  # an individual's own tax, self-service
    # 2. The payee file's warnings line by line: the payee the earmark refuses (the people's IDs are all in order).
    assert text.count("   warned: line ") == 1 and "line 10 收款钱包不符合专款专用条件" in text
    # 6. The payroll run withheld social insurance as the rules compute it but for the one planted slip.
    assert "   payroll line 15 withheld " in text and text.count(" withheld ¥") == 1
    assert "today reconciled: matched 2, discrepancies 0" in text
    # 7. Tax over the TIPS channel: an agreement verified, a real-time and a batch deduction, a refund approved by a
    # second person, the day reconciled with the planted discrepancy found and its case resolved.
    assert "the tax system verified it (9114 -> 9115): active" in text
    assert "real-time deduction (3001)" in text and "result (2102) 3 succeeded" in text
    assert "approved by tax_ap" in text and "result (2104) 90000" in text
    assert "discrepancies 1: " in text and "resolved by tax with a reason: 已解决 (resolved)" in text
    assert "8. left waiting: the " in text and "submitted by emp_a_op" in text  # the dashboard has something to say
    assert "unreachable" not in done.stderr + text  # the tax system is up for every step that calls it
    assert "celery.app.trace" not in done.stderr  # no line of Celery's between the demo's
    # Every kind of event the whole demo traced, and every key of their details, is named in words on the trace
    # pages (treasury.trace.labels).
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        kinds = {kind for (kind,) in db.execute("SELECT DISTINCT kind FROM trace_traceevent")}
        keys = {key for (key,) in db.execute("SELECT DISTINCT j.key FROM trace_traceevent, json_each(data) AS j")}
    assert len(kinds) > 50 and not kinds - set(event_labels())
    assert len(keys) > 50 and not keys - set(detail_labels())
    # `make sandbox` serves the operator ledger the demo leaves: every wallet the service registered is in it.
    assert "make sandbox" in text
    with closing(sqlite3.connect(tmp_path / "db.sqlite3")) as db:
        registered = {wallet for (wallet,) in db.execute("SELECT wallet_id FROM treasury_wallet")}
    with closing(sqlite3.connect(tmp_path / "sandbox.sqlite3")) as ledger:
        known = {wallet for (wallet,) in ledger.execute("SELECT wallet_id FROM wallets")}
    assert registered and not registered - known
    # Every demo user follows every link and API answer they can reach (tests/demo/crawl_roles.py): no page fails,
    # and nobody sees personal data whole that their role sees masked, nor the other employer's.
    crawled = subprocess.run([sys.executable, str(ROOT / "tests" / "demo" / "crawl_roles.py")], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    assert crawled.returncode == 0, crawled.stderr[-3000:]
    found = json.loads(crawled.stdout)
    assert found["failed"] == [] and found["whole"] == []
    assert all(count > 30 for count in found["pages"].values()), found["pages"]
