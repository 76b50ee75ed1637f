"""`manage.py payroll_import FILE --employer USCC --period YYYY-MM [--user NAME] [--hold-invalid]`.

Prints the batch id and a summary (lines valid, held, rejected, with warnings, total) for scripted use; exit 1 when
the file is rejected or refused, or is for another period than --period (a validated batch is then cancelled).
"""
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from payroll import services
from payroll.models import BatchState
from payroll.parsing import PayrollFileRefused
from treasury.access import roles
from treasury.money import format_yuan
from treasury.models import Organization


class Command(BaseCommand):
    help = "Import a payroll file (CSV or XLSX) for an employer and print the batch id and a summary."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--employer", required=True, help="the employer's unified social credit code")
        parser.add_argument("--period", required=True, help="pay period YYYY-MM; must match the file")
        parser.add_argument("--user", help="the employer operator preparing the batch (default: the first one)")
        parser.add_argument("--hold-invalid", action="store_true", help="keep the valid lines, hold the rest")

    def handle(self, *args, **options):
        employer = Organization.objects.filter(uscc=options["employer"].strip().upper()).first()
        if employer is None:
            raise CommandError(f"no organization with credit code {options['employer']}")
        users = get_user_model().objects.filter(membership__organization=employer, groups__name=roles.EMPLOYER_OPERATOR)
        user = users.filter(username=options["user"]).first() if options["user"] else users.order_by("pk").first()
        if user is None:
            raise CommandError("no employer operator of this employer to prepare the batch (use --user)")
        path = Path(options["file"])
        try:
            with path.open("rb") as file:  # read a chunk at a time, never whole
                batch = services.import_payroll_file(employer=employer, user=user, filename=path.name, data=file,
                                                     now=timezone.now(), hold_invalid_lines=options["hold_invalid"])
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}")
        except (PayrollFileRefused, services.PayrollError) as exc:
            raise CommandError(f"refused ({exc.code}): {exc}")
        if batch.period and batch.period != options["period"]:
            if batch.state == BatchState.VALIDATED:
                services.cancel_batch(batch_id=batch.pk, user=user, now=timezone.now(),
                                      reason=f"period {batch.period} in the file, {options['period']} expected")
            raise CommandError(f"batch {batch.pk} ({batch.state}): the file is for {batch.period}, not "
                               f"{options['period']}" + ("; cancelled" if batch.state == BatchState.VALIDATED else ""))
        self.stdout.write(f"batch {batch.pk} {batch.state}: {self._summary(batch)}")
        for problem in batch.problems[:20]:
            self.stdout.write(f"  line {problem['line']} {problem['column']}: {problem['message']}")
        if batch.state == BatchState.REJECTED:
            raise CommandError(f"batch {batch.pk} rejected: fix the lines above and import again")

    @staticmethod
    def _summary(batch) -> str:
        """Lines valid, held, rejected and with warnings (which do not stop paying: they are listed on the batch page
        and in the API), and the total to pay. A rejected batch keeps no line: its valid lines are the file's lines
        without a problem (at most, when more problems were found than the batch keeps)."""
        if batch.state == BatchState.REJECTED:
            rejected, exact = services.problem_line_count(batch)
            bound = "" if exact else "at most "
            return (f"{batch.line_total} lines in the file, {bound}{batch.line_total - rejected} valid, "
                    f"{'' if exact else 'at least '}{rejected} rejected ({batch.problem_count} problems); "
                    "nothing to pay until the file is fixed")
        rejected = batch.line_total - batch.payable_count - batch.held_count
        return (f"{batch.line_total} lines in the file, {batch.payable_count} valid, {batch.held_count} held, "
                f"{rejected} rejected ({batch.problem_count} problems), {batch.warning_count} with warnings; "
                f"total net {format_yuan(batch.total_net_fen)}")
