import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from tax import entries


class Command(BaseCommand):
    help = "Send a day's treasury entry detail (3139) to the tax system; packages acknowledged unchanged are skipped."

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True, help="entry date, YYYY-MM-DD")

    def handle(self, *args, **options):
        try:
            entry_date = dt.date.fromisoformat(options["date"])
        except ValueError as exc:
            raise CommandError(f"--date must be YYYY-MM-DD: {exc}") from exc
        from tax.reconciliation.corrections import book_correction_entries

        now = timezone.now()
        book_correction_entries(now=now)  # a correction settled that day is a line of its detail
        counts = entries.send_entry_details(entry_date=entry_date, now=now)
        self.stdout.write(f"{entry_date}: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no entries"))
