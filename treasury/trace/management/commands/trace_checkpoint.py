from django.core.management.base import BaseCommand
from django.utils import timezone

from treasury.trace.services import make_checkpoint


class Command(BaseCommand):
    help = "Sign a checkpoint (Merkle root over every trace stream head) with the service key."

    def handle(self, *args, **options):
        checkpoint = make_checkpoint(now=timezone.now())
        if checkpoint is None:
            self.stdout.write("no stream head moved since the last checkpoint: nothing to sign")
            return
        self.stdout.write(
            f"checkpoint #{checkpoint.number}: {checkpoint.stream_count:,} streams, "
            f"{checkpoint.event_count:,} events, {checkpoint.changed_count:,} heads changed, "
            f"root {checkpoint.merkle_root}, key {checkpoint.key_id}"
        )
