"""Names of things as people read them, in the page's language (the models' choices carry fixed
bilingual labels for the admin and exports; pages translate through these)."""
from django.utils.translation import gettext_lazy as _

from treasury.models import TransferState as S

TRANSFER_STATE_LABELS = {
    S.PENDING: _("Pending"),
    S.SUBMITTED: _("Submitted"),
    S.UNKNOWN: _("Outcome unknown"),
    S.SETTLED: _("Settled"),
    S.FAILED: _("Failed"),
    S.RETURNED: _("Returned"),
    S.REVERSED: _("Reversed"),
    S.CANCELLED: _("Cancelled"),
}


def transfer_state_choices():
    return [(value, TRANSFER_STATE_LABELS[value]) for value in S.values]
