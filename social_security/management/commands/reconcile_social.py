"""python manage.py reconcile_social [--date YYYY-MM-DD]: reconcile a day's premium payments, employers'
declarations and flexible-employment payments (default yesterday); exits 1 when there are discrepancies."""
import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from social_security.reconciliation import reconcile_day


class Command(BaseCommand):
    help = "Reconcile a day's social-insurance premium payments with the operator and the collecting authority."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="check date YYYY-MM-DD (default: yesterday)")

    def handle(self, *args, **options):
        now = timezone.now()
        try:
            day = dt.date.fromisoformat(options["date"]) if options["date"] else timezone.localdate(now) - dt.timedelta(days=1)
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD")
        run = reconcile_day(check_date=day, now=now)
        self.stdout.write(f"{day}: matched {run.matched_count}, discrepancies {run.discrepancy_count}")
        for result in run.results.exclude(outcome="matched").order_by("source", "request_id"):
            self.stdout.write(f"  {result.outcome}: {result.source} {result.document_no or result.request_id} "
                              f"ours {result.ours_fen} operator {result.operator_fen} case {result.case_id}")
        if run.discrepancy_count:
            raise SystemExit(1)
