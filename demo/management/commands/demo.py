"""`manage.py demo`: an end-to-end run on whatever database is configured (SQLite by default).

Starts a sandbox operator and a sandbox budget-management system (SOAP) on free loopback ports,
loads the demo world (organizations, users, wallets, a union), and moves money: a payroll file with
mistakes rejected with its error report, the fixed file approved by a second person and paid (union
dues and funds with it, a frozen wallet's line held); an earmarked subsidy disbursed from a budget
quota (voucher over SOAP, a payee refused by the smart contract and returned, results reported,
reconciled); a run whose reply is lost (recovered by idempotency key), a reversal; a flexible-employment
individual pays an overdue month of premiums with its late fee and a tax voucher from the same wallet; an
employer declares its social-insurance premiums; tax under a three-party agreement (real-time and batch
deductions, a refund approved by a second person, the day's three-way reconciliation and its case), with the
sandbox tax system calling this service served over HTTP (demo/tax_system.py). Then it proves the books:
ledger check, trace checkpoint and verification, receipts verified from their files.
"""
import datetime as dt
import logging
import shutil
import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from adapters.budget.client import get_budget_client
from adapters.budget.sandbox.server import start_in_thread as start_budget_sandbox
from adapters.ecny.client import get_operator_client
from adapters.ecny.interface import Conditions
from adapters.ecny.sandbox.server import start_in_thread
from demo.tax_system import tax_system_up
from demo.world import employee_social_share, load_demo_world, payee_csv, payroll_csv
from fiscal_disbursement import documents as fiscal_documents
from fiscal_disbursement import services as fiscal
from fiscal_disbursement.models import Quota
from payroll import services as payroll
from payroll.models import UnionMember
from treasury.models import Transfer, TransferState
from treasury.money import format_yuan
from treasury.receipts.models import Receipt
from treasury.receipts.services import issue_batch_receipt, receipt_file, verify_receipt_pdf
from treasury.services import transfers as transfer_services
from treasury.services.transfers import NewTransfer, OperatorUnavailable, create_transfers


# Where `manage.py run_sandbox` (`make sandbox`) keeps its operator's ledger by default.
OPERATOR_LEDGER = settings.VAR_DIR / "sandbox.sqlite3"


def _keep_operator_ledger(path: Path) -> None:
    """The demo's operator ledger (its wallets, balances and payments), copied to where `make sandbox` serves it:
    the service's records name those wallets, and an operator started empty would know none of them. SQLite's
    backup, so the copy is whole whatever the running sandbox is doing."""
    with sqlite3.connect(path) as source, sqlite3.connect(OPERATOR_LEDGER) as target:
        source.backup(target)


class Command(BaseCommand):
    help = "Load demo data and run an end-to-end demo against a sandbox operator."

    def add_arguments(self, parser):
        parser.add_argument("--keep-sandbox", action="store_true", help="keep the sandbox running (Ctrl-C to stop)")

    def handle(self, *args, **options):
        # The demo tells what happened; Celery's line for every eager task that succeeded would come between
        # its lines (a task that fails is still logged).
        logging.getLogger("celery.app.trace").setLevel(logging.WARNING)
        run_id = timezone.now().strftime("%Y%m%d%H%M%S")
        storage_dir = Path(tempfile.mkdtemp(prefix="demo-sandbox-"))
        sandbox = start_in_thread(storage_path=str(storage_dir / "sandbox.sqlite3"),
                                  api_key=settings.ECNY_OPERATOR_API_KEY, limits=settings.WALLET_CLASS_LIMITS)
        settings.ECNY_OPERATOR_URL = sandbox.url
        settings.ECNY_OPERATOR_TIMEOUT_SECONDS = 2
        get_operator_client.cache_clear()
        budget = start_budget_sandbox(storage_path=str(storage_dir / "budget.sqlite3"),
                                      api_key=settings.BUDGET_SYSTEM_API_KEY, seed_demo=True)
        settings.BUDGET_SYSTEM_URL = budget.url
        get_budget_client.cache_clear()
        try:
            self._run(sandbox, budget, run_id)
            _keep_operator_ledger(storage_dir / "sandbox.sqlite3")
            if options["keep_sandbox"]:
                self.stdout.write(f"sandbox operator running at {sandbox.url}, budget system at {budget.url}; "
                                  f"Ctrl-C to stop")
                sandbox._thread.join()
        finally:
            sandbox.stop()
            budget.stop()
            get_budget_client.cache_clear()
            shutil.rmtree(storage_dir, ignore_errors=True)

    def say(self, text=""):
        self.stdout.write(text)

    def _run(self, sandbox, budget, run_id):
        say = self.say
        world = load_demo_world()
        w = world.wallets
        admin = sandbox.admin
        # The operator's back office opens the same wallets and funds the payers.
        admin.open_wallets(wallets=[
            {"wallet_id": wallet.wallet_id, "wallet_type": wallet.wallet_type, "wallet_class": wallet.wallet_class,
             "holder_name": wallet.holder_name}
            for wallet in [*w.values(), *world.employees_a, *world.employees_b, *world.individuals.values()]
        ])
        for key, amount in (("employer_a", 5_000_000_00), ("employer_b", 1_000_000_00),
                            ("fiscal_zero_balance", 50_000_000_00)):
            admin.fund(wallet_id=w[key].wallet_id, amount_fen=amount)
        frozen = world.employees_a[6]
        admin.set_status(wallet_id=frozen.wallet_id, status="frozen")  # the operator froze it; we don't know yet

        say("== e-CNY treasury service demo ==")
        say(f"sandbox operator: {sandbox.url} (its own ledger, limits and smart contracts)")
        say(f"sandbox budget-management system: {budget.url} (SOAP; its own quota ledger)")
        say()

        # 1. Salaries: employer A's payroll office uploads a file (with two mistakes), fixes it, a second
        # person approves, the corporate wallet is checked, the run pays; union dues and funds go with it.
        period = timezone.localdate().strftime("%Y-%m")
        employer_a = world.orgs["employer_a"]
        clerk, approver = (get_user_model().objects.get(username=name) for name in ("emp_a_op", "emp_a_ap"))
        # Dues are withheld from members whose dues for the month are not paid yet (a demo run again in the
        # same month is a second run of that month's payroll).
        members = frozenset(UnionMember.objects.filter(union__employer=employer_a, active=True)
                            .exclude(dues_calls__period=period).values_list("resident_id", flat=True))
        # Social insurance withheld as the city's rules compute it, but for one slip on the ninth employee
        # (¥10.00 too little) that the declaration made from this run (step 6) finds.
        social_share = employee_social_share(region_code="370100", period=period)
        spoiled = payroll_csv(employer=employer_a, period=period, staff=world.employees_a, union_members=members,
                              spoil={2: {2: "37010219700312003X"}, 4: {15: "1.00"}}, variant=int(run_id) % 100,
                              social_share=social_share)
        rejected = payroll.import_payroll_file(employer=employer_a, user=clerk, filename=f"工资{run_id}.csv",
                                               data=spoiled, now=timezone.now())
        report = Path(settings.MEDIA_ROOT) / "demo" / f"payroll-{rejected.pk}-errors.csv"
        report.parent.mkdir(parents=True, exist_ok=True)
        with payroll.error_report(batch=rejected) as source, report.open("wb") as target:
            shutil.copyfileobj(source, target)
        say(f"1. payroll file for {period} uploaded by emp_a_op: {rejected.state}, {rejected.problem_count} problems")
        for problem in rejected.problems:
            say(f"   line {problem['line']} {problem['column']}: {problem['message']}")
        say(f"   error report to fix and upload again: {report}")
        fixed = payroll_csv(employer=employer_a, period=period, staff=world.employees_a, union_members=members,
                            variant=int(run_id) % 100, social_share=social_share, social_slips={8: -10_00})
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

        # 2. An earmarked subsidy from a budget quota: a clerk prepares it with a payee file, another person
        # approves, the voucher goes to the budget system over SOAP, the payments carry smart-contract
        # conditions (personal wallets only, purpose SUBSIDY, spend by a date), a company the conditions
        # refuse comes back as a return, the results are reported and reconciled.
        fiscal.sync_quotas(now=timezone.now())
        finance_clerk, finance_approver = (get_user_model().objects.get(username=n) for n in ("clerk", "approver"))
        quota_id = "ZB2026-101001-001"
        company = world.orgs["employer_b"]
        payees = [(x.holder_name, x.holder_person.resident_id, x.wallet_id) for x in world.employees_b[:8]]
        payees.append((company.name, company.uscc, w["employer_b"].wallet_id))
        earmark = Conditions(payee_category="WT01", purposes=("SUBSIDY",),
                             expires_at=timezone.now() + timezone.timedelta(days=30))
        request = fiscal.create_request(
            user=finance_clerk, quota_id=quota_id, pay_type="1", title=f"困难群众生活补助 {run_id}",
            conditions=earmark, filename=f"补助名单{run_id}.csv", now=timezone.now(),
            data=payee_csv(payees, amount_fen=800_00, memo="生活补助"),
        )
        say(f"2. subsidy request {request.bill_no} by clerk on quota {quota_id}: {request.line_count} payees, "
            f"{format_yuan(request.total_fen)}")
        for line in request.lines.exclude(warnings=[]).order_by("line_no"):
            notes = line.other_warnings + (["收款钱包不符合专款专用条件，运营机构将拒付 (not admitted by the earmark "
                                            "conditions: the operator will refuse it)"] if line.earmark_warned else [])
            say(f"   warned: line {line.line_no} {'; '.join(notes)}")
        fiscal.submit_request(request_id=request.pk, user=finance_clerk, now=timezone.now())
        fiscal.approve_request(request_id=request.pk, user=finance_approver, now=timezone.now())  # maker-checker
        request.refresh_from_db()
        say(f"   approved by approver, voucher {request.voucher_no} acknowledged, paid: {request.state}")
        refused = request.lines.filter(transfer__state=TransferState.FAILED).select_related("transfer")
        for line in refused:
            say(f"   refused by the smart contract: line {line.line_no} {line.transfer.failure_code}")
        fiscal.return_lines(request_id=request.pk, line_ids=[line.pk for line in refused], user=finance_clerk,
                            reason="收款人为单位，不符合专款专用条件", now=timezone.now())
        request = fiscal.reconcile_request(request_id=request.pk, now=timezone.now())
        theirs = budget.admin.voucher(voucher_no=request.voucher_no)
        quota = Quota.objects.get(quota_id=quota_id)
        say(f"   return confirmed, results reported, reconciled: {request.state}; paid {request.paid_count} "
            f"({format_yuan(request.paid_fen)}), returned {request.returned_count} ({format_yuan(request.returned_fen)})")
        say(f"   the budget system holds for the voucher: paid {format_yuan(theirs['paid_fen'])}, returned "
            f"{format_yuan(theirs['returned_fen'])}; quota {quota_id}: available {format_yuan(quota.available_fen)}, "
            f"nothing left reserved ({quota.reserved_fen})")
        folder = Path(settings.MEDIA_ROOT) / "demo"
        voucher_pdf = folder / f"voucher-{request.voucher_no}.pdf"
        voucher_pdf.write_bytes(fiscal_documents.render_voucher_pdf(request=request))
        daily_pdf = folder / f"disbursement-{timezone.localdate():%Y%m%d}.pdf"
        daily_pdf.write_bytes(fiscal_documents.render_daily_report_pdf(organization=world.orgs["finance"],
                                                                       day=timezone.localdate()))
        say(f"   voucher PDF: {voucher_pdf}")
        say(f"   daily disbursement report: {daily_pdf}")
        say(f"   trace from quota to wallet: /trace/batch/{request.batch_ref}/")
        say()
        subsidy_batch = request.batch_ref

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
        with tax_system_up() as tips:  # steps 5-7 talk to the sandbox tax system, and it to this service
            self._flexible_premiums(world, admin)
            self._employer_declaration(world, payroll_batch, tips)
            self._tax(world, tips)

        # 8. Left for a person: next month's payroll, uploaded and submitted, waits for a second person.
        next_period = (timezone.localdate().replace(day=28) + dt.timedelta(days=4)).strftime("%Y-%m")
        upcoming = payroll.import_payroll_file(
            employer=employer_a, user=clerk, filename=f"工资{run_id}-{next_period}.csv", now=timezone.now(),
            hold_invalid_lines=True,
            data=payroll_csv(employer=employer_a, period=next_period, staff=world.employees_a,
                             variant=int(run_id) % 100,
                             social_share=employee_social_share(region_code="370100", period=next_period)))
        payroll.submit_batch(batch_id=upcoming.pk, user=clerk, now=timezone.now())
        say(f"8. left waiting: the {next_period} payroll run (batch {upcoming.pk}) submitted by emp_a_op; "
            f"emp_a_ap's dashboard lists it under \"Waiting for you\"")
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
        say(f"  make sandbox  the sandbox operator with the demo's wallets and balances ({OPERATOR_LEDGER.name} in the"
            f" service's data folder), for the pages that pay")
        say("  make run      then open http://127.0.0.1:8000/ and log in as one of:")
        for username, password in world.passwords.items():
            say(f"    {username:10} password {password}")
        if not world.passwords:
            say("    clerk, approver, tax, tax_ap, emp_a_op, emp_a_ap, emp_b_op, auditor, admin, flex (passwords printed on the first run)")

    def _flexible_premiums(self, world, admin):
        """5. A flexible-employment individual enrols from three months back, pays the oldest (overdue) month with
        its late fee and leaves the next overdue one for the pages."""
        from social_security.flexible import services as flexible
        from social_security.flexible.models import Enrolment

        say = self.say
        user = get_user_model().objects.get(username="flex")
        wallet = world.individuals["flex"]
        admin.fund(wallet_id=wallet.wallet_id, amount_fen=20_000_00)
        now = timezone.now()
        enrolment = Enrolment.objects.filter(person=wallet.holder_person).first()
        try:
            if enrolment is None:
                start = flexible.add_months(flexible.month_start(timezone.localdate(now)), -3)
                enrolment = flexible.enrol(user=user, region_code="370100", base_level=100, frequency="monthly",
                                           wallet_id=wallet.wallet_id, start_month=start, now=now)
            flexible.make_periods(enrolment_id=enrolment.pk, now=now)
            due = flexible.payable_periods(enrolment=enrolment, now=now)
            say(f"5. flexible employment: flex ({wallet.masked_holder_name}) enrolled in 370100 at 100%, "
                f"{len(due)} months due")
            if len(due) > 1:
                payment = flexible.pay(user=user, enrolment_id=enrolment.pk, period_ids=[due[0].pk], now=now)
                say(f"   paid {due[0].month:%Y-%m}: {payment.state}, {format_yuan(payment.contributions_fen)} "
                    f"+ late fee {format_yuan(payment.late_fee_fen)}")
            for period in flexible.payable_periods(enrolment=enrolment, now=now)[:1]:
                days, fee = flexible.late_fee_for(period=period, on=timezone.localdate(now))
                say(f"   still due: {period.month:%Y-%m} {format_yuan(period.total_fen)}, {days} days overdue, "
                    f"late fee today {format_yuan(fee)} (log in as flex to pay it and download the statement)")
        except flexible.FlexibleError as exc:
            say(f"5. flexible employment: not run ({exc})")
        # The same person pays a personal income tax voucher from the same wallet, as on the "my tax" page.
        from tax import services as tax_services

        try:
            tax = tax_services.pay_my_tax(user=user, wallet_id=wallet.wallet_id, tax_org_code=world.orgs["tax"].code,
                                          tax_vou_no=f"3{timezone.localdate(now):%Y%m%d}000001", amount_fen=128_00,
                                          tax_type_name="个人所得税", now=now)
            say(f"   my tax: flex paid tax voucher {tax.tax_vou_no} ({format_yuan(tax.amount_fen)}) from the same "
                f"wallet: {tax.result_code} {tax.add_word} (/tax/mine/)")
        except (tax_services.TaxError, OperatorUnavailable) as exc:
            say(f"   my tax: not paid ({exc})")
        say()

    def _employer_declaration(self, world, payroll_batch, tips):
        """6. Employer A declares the month's social-insurance premiums from its payroll run: the sandbox tax system
        confirms it over the TIPS channel (5101 -> 5102), a second person pays it under the three-party agreement."""
        from adapters.tips.interface import AgreementVerification
        from social_security import services as social
        from social_security.models import Declaration, DeclarationState, FundAccount, Region
        from tax import services as tax_services
        from tax.models import AgreementState, TaxAgreement

        say, users = self.say, get_user_model().objects
        employer, wallet = world.orgs["employer_a"], world.wallets["employer_a"]
        FundAccount.objects.get_or_create(region=Region.objects.get(code="370100"),
                                          defaults={"tax_authority": world.orgs["tax"], "wallet": world.wallets["social"]})
        try:
            tax_code = world.orgs["tax"].code
            if not TaxAgreement.objects.filter(taxpayer_id=employer.uscc, tax_org_code=tax_code,
                                               state=AgreementState.ACTIVE).exists():
                agreement = tax_services.sign_agreement(
                    user=users.get(username="tax"), tax_org_code=tax_code, taxpayer_id=employer.uscc,
                    taxpayer_name=employer.name, wallet_id=wallet.wallet_id, protocol_no=f"SI-{employer.uscc}",
                    signed_date=timezone.localdate(), now=timezone.now())
                tax_services.handle_agreement_verification(now=timezone.now(), message=AgreementVerification(
                    send_org_code=tax_code, entrust_date=timezone.localdate(), vc_no="00000001", vc_sign="0",
                    tax_org_code=tax_code, tax_pay_code=employer.uscc, tax_pay_name=employer.name,
                    pay_op_bk_code=agreement.pay_op_bk_code.ljust(12, "0"), pay_bk_code="001000000000",
                    pay_acct=wallet.wallet_id, hand_org_name=wallet.holder_name, protocol_no=agreement.protocol_no))
            batch_id = int(payroll_batch.split("-")[-1])  # "payroll-<id>"
            # One declaration a month: a demo run again in the same month shows the one it made before.
            period = timezone.localdate().strftime("%Y-%m")
            declaration = (Declaration.objects.filter(payroll_batch_id=batch_id).first()
                           or Declaration.objects.filter(employer=employer, period=period)
                           .exclude(state=DeclarationState.CANCELLED).first())
            made_earlier = declaration is not None
            if declaration is None:
                declaration = social.declaration_from_payroll(
                    user=users.get(username="emp_a_op"), payroll_batch_id=batch_id, region_code="370100",
                    now=timezone.now())
                social.declare(declaration_id=declaration.pk, user=users.get(username="emp_a_ap"), now=timezone.now())
                social.pay_declaration(declaration_id=declaration.pk, user=users.get(username="emp_a_ap"),
                                       now=timezone.now())
                social.finish_paying_declarations(now=timezone.now())
            declaration.refresh_from_db()
            differ = list(social.withheld_differences(declaration=declaration).select_related("payroll_line"))
            say(f"6. social insurance: emp_a_op declared {declaration.period} from the payroll run "
                f"({declaration.line_count} persons, employer {format_yuan(declaration.employer_total_fen)}, "
                f"individual {format_yuan(declaration.individual_total_fen)})")
            for line in differ:
                say(f"   payroll line {line.payroll_line.line_no} withheld {format_yuan(line.payroll_withheld_fen)} "
                    f"of the employee's {format_yuan(line.individual_fen)}: marked on the declaration's page")
            say(f"   the tax system confirmed it (voucher {declaration.voucher_no or '-'}); emp_a_ap paid it: "
                f"{declaration.state}")
            # Today's payments of both halves (step 5's flexible premium, this declaration) are reconciled with
            # the operator's statement; the tax system was told of the flexible payment (5104) when it was paid.
            from social_security.reconciliation import reconcile_day
            from treasury.services.transfers import OperatorRejected

            try:
                run = reconcile_day(check_date=timezone.localdate(), now=timezone.now())
                notices = len(tips.admin.social_flexible_payments())
                say(f"   the tax system holds {notices} flexible payment notice(s) (5104); today reconciled: matched "
                    f"{run.matched_count}, discrepancies {run.discrepancy_count} (tax: /social/reconciliation/)")
                if made_earlier and run.discrepancy_count:
                    say("   (the sandbox operator starts empty every demo run: its statement lacks the payments of "
                        "today's earlier runs, which our books hold)")
            except (OperatorUnavailable, OperatorRejected) as exc:
                say(f"   reconciliation not run: {exc}")
        except (social.SocialError, tax_services.TaxError) as exc:
            say(f"6. social insurance: not run ({exc})")
        say()

    def _tax(self, world, tips):
        """7. Tax under a three-party agreement, every message over the TIPS channel: tax staff sign employer B's
        agreement and the tax system verifies it (9114 -> 9115); the tax system deducts a VAT in real time
        (3001 -> 2001) and a package of three (3102 -> 9121, then the service's 2102); it orders a refund (1104)
        that `tax` reviews and `tax_ap` approves (the preparer may not), paid from the treasury (2104 back); the
        day's check message (3111), with one serial planted missing, is reconciled three ways and the
        discrepancy becomes a case that `tax` investigates and resolves with a reason."""
        from tax import services as tax_services
        from tax.models import RefundOrder, TaxAgreement
        from tax.reconciliation import documents as reconciliation_documents
        from tax.reconciliation import services as reconciliation
        from tax.reconciliation.models import DiscrepancyCase, ReconciliationRun
        from adapters.tips.sandbox.admin import TipsSandboxAdminError
        from treasury.access.errors import MakerCheckerViolation

        say, users = self.say, get_user_model().objects
        staff, second = users.get(username="tax"), users.get(username="tax_ap")
        tax_code, today = world.orgs["tax"].code, timezone.localdate()
        employer, wallet = world.orgs["employer_b"], world.wallets["employer_b"]
        if ReconciliationRun.objects.filter(check_date=today, tax_org_code="").exists():
            # The sandbox tax system starts afresh each run and would number today's serials from 1 again.
            say("7. tax: run once a day; today's is on /tax/deductions/ and /tax/reconciliation/")
            return
        try:
            protocol_no = f"TAX-{employer.uscc}"
            agreement = TaxAgreement.objects.filter(tax_org_code=tax_code, protocol_no=protocol_no).first()
            if agreement is None:
                agreement = tax_services.sign_agreement(
                    user=staff, tax_org_code=tax_code, taxpayer_id=employer.uscc, taxpayer_name=employer.name,
                    wallet_id=wallet.wallet_id, protocol_no=protocol_no, signed_date=today, now=timezone.now())
            tips.admin.register_agreement(
                tax_pay_code=employer.uscc, tax_pay_name=employer.name, pay_acct=wallet.wallet_id,
                protocol_no=protocol_no, hand_org_name=employer.name, tax_org_code=tax_code,
                pay_op_bk_code=agreement.pay_op_bk_code.ljust(12, "0"), pay_bk_code="001000000000")
            agreement.refresh_from_db()
            say(f"7. tax: tax signed employer B's three-party agreement {protocol_no}; the tax system verified it "
                f"(9114 -> 9115): {agreement.state}")

            deduction = tips.admin.send_deduction(protocol_no=protocol_no, amount_fen=3_456_78)
            say(f"   real-time deduction (3001) {deduction['tra_no']}: {deduction['result']} {deduction['add_word']}, "
                f"{format_yuan(3_456_78)} VAT from the company's wallet into the treasury")
            package = tips.admin.send_package(protocol_no=protocol_no, count=3, amount_fen=500_00)
            (result,) = [r for r in tips.admin.results() if r["ori_pack_no"] == package["pack_no"]]
            say(f"   batch package (3102) {package['pack_no']} of {package['all_num']}: acknowledged "
                f"{package['result']}, deducted, result (2102) {result['succ_num']} succeeded, "
                f"{format_yuan(result['succ_amount_fen'])}")

            ack = tips.admin.send_refund_order(
                items=[{"tax_pay_code": employer.uscc, "tax_pay_name": employer.name, "payee_acct": wallet.wallet_id,
                        "amount_fen": 120_00}],
                draw_back_tre_code=world.orgs["treasury"].code, tax_org_code=tax_code)
            order = RefundOrder.objects.get(tax_org_code=tax_code, pack_no=ack["pack_no"])
            tax_services.review_refund_order(order_id=order.pk, user=staff, now=timezone.now())
            try:
                tax_services.approve_refund_order(order_id=order.pk, user=staff, now=timezone.now())
            except MakerCheckerViolation as exc:
                refused = str(exc)
            else:
                raise CommandError("maker-checker let the reviewer of a refund order approve it too")
            tax_services.approve_refund_order(order_id=order.pk, user=second, now=timezone.now())
            order.refresh_from_db()
            (refund_result,) = [r for r in tips.admin.refund_results() if r["ori_pack_no"] == ack["pack_no"]]
            say(f"   refund order (1104) {order.pack_no}: reviewed by tax, who may not approve it ({refused}); "
                f"approved by tax_ap, paid {format_yuan(order.all_amount_fen)} from the treasury: {order.state}, "
                f"result (2104) {refund_result['result']}")

            dropped = package["tra_nos"][0]
            tips.admin.send_check_detail(today, plant={"drop": [dropped]})
            run = ReconciliationRun.objects.filter(check_date=today, tax_org_code="").latest("pk")
            cases = DiscrepancyCase.objects.filter(check_date=today).order_by("pk")
            say(f"   the day's check message (3111), serial {dropped} planted missing: reconciled three ways, "
                f"matched {run.matched_count}, discrepancies {run.discrepancy_count}: "
                f"{', '.join(f'{c.tra_no} {c.get_outcome_display()}' for c in cases)}")
            case = cases.filter(tra_no=dropped).first()
            if case is not None:
                reconciliation.investigate_case(case_id=case.pk, user=staff, note="向税务局核实 (asked the tax office)",
                                                now=timezone.now())
                case = reconciliation.resolve_case(
                    case_id=case.pk, user=staff, now=timezone.now(),
                    reason="税务方对账文件漏报，已确认入库 (the tax system's file left it out; its entry is confirmed)")
                say(f"   case {case.pk} ({case.tra_no}) investigated and resolved by tax with a reason: "
                    f"{case.get_state_display()}")
            report = Path(settings.MEDIA_ROOT) / "demo" / f"tax-reconciliation-{today:%Y%m%d}.pdf"
            report.write_bytes(reconciliation_documents.run_pdf(user=staff, run=run))
            say(f"   reconciliation report: {report} (pages: /tax/reconciliation/, log in as tax)")
        except (tax_services.TaxError, reconciliation.ReconciliationError, TipsSandboxAdminError,
                OperatorUnavailable) as exc:
            say(f"7. tax: not run ({exc})")
        say()

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
