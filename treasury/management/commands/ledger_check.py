from django.core.management.base import BaseCommand, CommandError

from treasury.services.ledger import check_ledger


class Command(BaseCommand):
    help = "Prove every posting balances and every balance equals the sum of its entries; exit 1 naming what is wrong."

    def handle(self, *args, **options):
        report = check_ledger()
        for problem in report.problems:
            self.stderr.write(problem)
        if report.problems:
            raise CommandError(f"ledger check FAILED: {len(report.problems)} problem(s)")
        self.stdout.write(
            f"ledger OK: {report.entries} entries, {report.transfers} posted transfers, "
            f"{report.accounts} accounts, all postings balance, all balances equal their entries"
        )
