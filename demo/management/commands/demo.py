"""`manage.py demo`: an end-to-end run on whatever database is configured (SQLite by default).

Starts a sandbox operator on a free loopback port, loads the demo world (organizations, users,
wallets, a union), and moves money: a payroll file with mistakes rejected with its error report, the
fixed file approved by a second person and paid (union dues and funds with it, a frozen wallet's
line held), an earmarked subsidy (smart-contract conditions), a run whose reply is lost (recovered
by idempotency key), a reversal. Then it proves the books: ledger check, trace checkpoint and
verification, receipts verified from their files.
"""
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from adapters.ecny.client import get_operator_client
from adapters.ecny.interface import Conditions
from adapters.ecny.sandbox.server import start_in_thread
from demo.world import load_demo_world, payroll_csv
from payroll import services as payroll
from treasury.models import Transfer, TransferState
from treasury.money import format_yuan
from treasury.receipts.models import Receipt
from treasury.receipts.services import issue_batch_receipt, receipt_file, verify_receipt_pdf
from treasury.services import transfers as transfer_services
from treasury.services.transfers import NewTransfer, create_transfers


class Command(BaseCommand):
    help = "Load demo data and run an end-to-end demo against a sandbox operator."

    def add_arguments(self, parser):
        parser.add_argument("--keep-sandbox", action="store_true", help="keep the sandbox running (Ctrl-C to stop)")

    def handle(self, *args, **options):
        run_id = timezone.now().strftime("%Y%m%d%H%M%S")
        storage_dir = Path(tempfile.mkdtemp(prefix="demo-sandbox-"))
        sandbox = start_in_thread(storage_path=str(storage_dir / "sandbox.sqlite3"),
                                  api_key=settings.ECNY_OPERATOR_API_KEY, limits=settings.WALLET_CLASS_LIMITS)
        settings.ECNY_OPERATOR_URL = sandbox.url
        settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 2
        get_operator_client.cache_clear()
        try:
            self._run(sandbox, run_id)
            if options["keep_sandbox"]:
                self.stdout.write(f"sandbox operator running at {sandbox.url}; Ctrl-C to stop")
                sandbox._thread.join()
        finally:
            sandbox.stop()
            shutil.rmtree(storage_dir, ignore_errors=True)

    def say(self, text=""):
        self.stdout.write(text)

    def _run(self, sandbox, run_id):
        say = self.say
        world = load_demo_world()
        w = world.wallets
        admin = sandbox.admin
        # The operator's back office opens the same wallets and funds the payers.
        admin.open_wallets(wallets=[
            {"wallet_id": wallet.wallet_id, "wallet_type": wallet.wallet_type, "wallet_class": wallet.wallet_class,
             "holder_name": wallet.holder_name}
            for wallet in [*w.values(), *world.employees_a, *world.employees_b]
        ])
        for key, amount in (("employer_a", 5_000_000_00), ("employer_b", 1_000_000_00),
                            ("fiscal_zero_balance", 50_000_000_00)):
            admin.fund(wallet_id=w[key].wallet_id, amount_fen=amount)
        frozen = world.employees_a[6]
        admin.set_status(wallet_id=frozen.wallet_id, status="frozen")  # the operator froze it; we don't know yet

        say("== e-CNY treasury service demo ==")
        say(f"sandbox operator: {sandbox.url} (its own ledger, limits and smart contracts)")
        say()

        # 1. Salaries: employer A's payroll office uploads a file (with two mistakes), fixes it, a second
        # person approves, the corporate wallet is checked, the run pays; union dues and funds go with it.
        period = timezone.localdate().strftime("%Y-%m")
        employer_a = world.orgs["employer_a"]
        clerk, approver = (get_user_model().objects.get(username=name) for name in ("emp_a_op", "emp_a_ap"))
        spoiled = payroll_csv(employer=employer_a, period=period, staff=world.employees_a,
                              spoil={2: {2: "37010219700312003X"}, 4: {15: "1.00"}}, variant=int(run_id) % 100)
        rejected = payroll.import_payroll_file(employer=employer_a, user=clerk, filename=f"工资{run_id}.csv",
                                               data=spoiled, now=timezone.now())
        report = Path(settings.MEDIA_ROOT) / "demo" / f"payroll-{rejected.pk}-errors.csv"
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_bytes(payroll.error_report(batch=rejected))
        say(f"1. payroll file for {period} uploaded by emp_a_op: {rejected.state}, {rejected.problem_count} problems")
        for problem in rejected.problems:
            say(f"   line {problem['line']} {problem['column']}: {problem['message']}")
        say(f"   error report to fix and upload again: {report}")
        fixed = payroll_csv(employer=employer_a, period=period, staff=world.employees_a, variant=int(run_id) % 100)
        batch = payroll.import_payroll_file(employer=employer_a, user=clerk, filename=f"工资{run_id}-fixed.csv",
                                            data=fixed, now=timezone.now(), hold_invalid_lines=True)
        say(f"   fixed file: batch {batch.pk} {batch.state}, {batch.payable_count} lines to pay "
            f"({format_yuan(batch.total_net_fen)}), {batch.held_count} held:")
        for line in batch.lines.filter(held=True):
            say(f"   held: line {line.line_no} {line.hold_reason}")
        payroll.submit_batch(batch_id=batch.pk, user=clerk, now=timezone.now())
        payroll.approve_batch(batch_id=batch.pk, user=approver, now=timezone.now())  # maker-checker
        payroll.fund_batch(batch_id=batch.pk, user=approver, now=timezone.now())
        payroll.pay_batch(batch_id=batch.pk, user=clerk, now=timezone.now())
        batch = payroll.finish_batch_if_done(batch_id=batch.pk, now=timezone.now())
        progress = payroll.line_progress(batch=batch)
        say(f"   approved by emp_a_ap, funded, paid: {batch.state}, {progress.paid} lines paid "
            f"({format_yuan(progress.paid_fen)}), {progress.held} held")
        self._report("   union dues and funds remitted with the run", f"{batch.batch_ref}-union")
        payroll_batch = batch.batch_ref

        # 2. An earmarked subsidy from the fiscal zero-balance account: only listed payees, only SUBSIDY.
        subsidy_batch = f"demo-subsidy-{run_id}"
        eligible = world.employees_b[:8]
        earmark = Conditions(allowed_payees=tuple(x.wallet_id for x in eligible), purposes=("SUBSIDY",),
                             expires_at=timezone.now() + timezone.timedelta(days=30))
        self._pay(world.orgs["finance"], subsidy_batch, w["fiscal_zero_balance"], world.employees_b,
                  [500_00] * len(world.employees_b), purpose="SUBSIDY", actor="clerk", conditions=earmark)
        self._report("2. earmarked subsidy (专款专用), 8 eligible of 10 recipients", subsidy_batch)

        # 3. Employer B's bonus run: the operator applies the batch but the reply is lost (timeout).
        bonus_batch = f"demo-bonus-{run_id}"
        admin.set_fault("timeout_after_apply", count=1, sleep_seconds=4)
        self._pay(world.orgs["employer_b"], bonus_batch, w["employer_b"], world.employees_b,
                  [1_000_00] * len(world.employees_b), purpose="BONUS", actor="emp_b_op")
        states = Counter(Transfer.objects.filter(batch_ref=bonus_batch).values_list("state", flat=True))
        recovered = transfer_services.recover_unconfirmed_transfers(now=timezone.now())
        self._report(f"3. bonus run; the reply was lost ({dict(states)}), recovered by idempotency key "
                     f"(settled {recovered.get('settled', 0)})", bonus_batch)

        # 4. A reversal (冲正) of one salary paid twice by mistake.
        paid = Transfer.objects.filter(batch_ref=payroll_batch, state=TransferState.SETTLED).order_by("-pk").first()
        transfer_services.reverse_transfer(transfer_id=paid.pk, reason="duplicate payment (demo)", actor="emp_a_ap",
                                           now=timezone.now())
        say(f"4. reversal: transfer {paid.pk} ({format_yuan(paid.amount_fen)}) reversed; money back with the employer")
        say()

        batch_receipt = issue_batch_receipt(batch_ref=payroll_batch, now=timezone.now())
        say("== proofs ==")
        call_command("ledger_check", stdout=self.stdout)
        call_command("trace_checkpoint", stdout=self.stdout)
        call_command("verify_trace", stdout=self.stdout)
        receipts = Receipt.objects.filter(transfer__batch_ref__in=[payroll_batch, subsidy_batch, bonus_batch])
        sample = receipts.order_by("pk").first()
        verdict = verify_receipt_pdf(pdf_bytes=receipt_file(sample.file_path).read_bytes())
        say(f"receipts: {receipts.count()} signed PDFs; {sample.number} verifies: {verdict.ok}")
        say(f"  a transfer receipt: {receipt_file(sample.file_path)}")
        say(f"  the salary run's summary receipt: {receipt_file(batch_receipt.file_path)}")
        say(f"  check any receipt: python manage.py verify_receipt {receipt_file(sample.file_path)}")
        say()
        say("== try it ==")
        say("  make run      then open http://127.0.0.1:8000/ and log in as one of:")
        for username, password in world.passwords.items():
            say(f"    {username:10} password {password}")
        if not world.passwords:
            say("    clerk, approver, tax, emp_a_op, emp_a_ap, emp_b_op, auditor, admin (passwords printed on the first run)")

    def _pay(self, org, batch_ref, payer, payees, amounts, *, purpose, actor, conditions=None, payee=None):
        items = [
            NewTransfer(payer_id=(payer or person).pk, payee_id=(payee or person).pk, amount_fen=amount,
                        idempotency_key=f"{batch_ref}:{i + 1}", purpose_code=purpose,
                        source_ref=f"{batch_ref} line {i + 1}", conditions=conditions)
            for i, (person, amount) in enumerate(zip(payees, amounts))
        ]
        with transaction.atomic():
            create_transfers(organization_id=org.pk, batch_ref=batch_ref, transfers=items, actor=actor,
                             now=timezone.now())

    def _report(self, title, batch_ref):
        rows = Transfer.objects.filter(batch_ref=batch_ref)
        settled = rows.filter(state=TransferState.SETTLED)
        total = sum(settled.values_list("amount_fen", flat=True))
        self.say(title)
        self.say(f"   settled {settled.count()} for {format_yuan(total)}")
        for t in rows.filter(state=TransferState.FAILED).select_related("payee"):
            self.say(f"   refused: {t.payee.masked_wallet_id} {format_yuan(t.amount_fen)} {t.failure_code}: {t.failure_message}")
        self.say()
