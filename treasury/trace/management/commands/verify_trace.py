from django.core.management.base import BaseCommand, CommandError

from treasury.trace.verification import verify_trace


class Command(BaseCommand):
    help = (
        "Verify the trace: recompute every event hash, check seq continuity, hash links and stream heads, "
        "and every checkpoint's signature, chain and recorded heads. Names each problem; exits 1 if any."
    )

    def add_arguments(self, parser):
        parser.add_argument("--stream", help="verify only this stream (checkpoint signatures are still checked)")
        parser.add_argument("--max-problems", type=int, default=1000, help="list at most this many (all are counted)")

    def handle(self, *args, stream=None, max_problems=1000, **options):
        report = verify_trace(stream_key=stream, max_problems=max_problems)
        for problem in report.problems:
            self.stderr.write(str(problem))
        if report.problem_count > len(report.problems):
            self.stderr.write(f"... and {report.problem_count - len(report.problems):,} more")
        if not report.ok:
            raise CommandError(report.summary(), returncode=1)
        self.stdout.write(report.summary())
