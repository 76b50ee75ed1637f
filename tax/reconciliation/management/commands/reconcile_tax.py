import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tax.reconciliation import services


class Command(BaseCommand):
    help = "Reconcile a check date three ways (tax system 3111, our deductions, the operator statement)."

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True, help="check date, YYYY-MM-DD")
        parser.add_argument("--tax-org", default="", help="one tax authority code (default: all)")

    def handle(self, *args, **options):
        try:
            check_date = dt.date.fromisoformat(options["date"])
        except ValueError as exc:
            raise CommandError(f"--date must be YYYY-MM-DD: {exc}") from exc
        run = services.reconcile(check_date=check_date, tax_org_code=options["tax_org"], now=timezone.now())
        self.stdout.write(f"{run.check_date} {run.tax_org_code or '*'}: {run.state}"
                          + (f" ({run.note})" if run.note else ""))
        for outcome, total in sorted(run.totals.items()):
            self.stdout.write(f"  {outcome}: {total['count']} tax={total['tax_fen']} ours={total['ours_fen']} "
                              f"operator={total['operator_fen']}")
        if run.state == "done" and not run.tax_org_code:  # the day's 2111, again if the answer changed
            sent_before = run.reply_sent_at
            run = services.send_check_result(run_id=run.pk, now=timezone.now())
            if run.reply_sent_at != sent_before:
                self.stdout.write(f"2111 sent: {run.reply_sent_text}")
            elif run.note:
                self.stdout.write(f"2111 not sent: {run.note}")
