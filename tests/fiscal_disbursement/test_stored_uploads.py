"""A draft's payee file replaced by another is named by no request: the daily task removes it once a day old,
unless it was stored again meanwhile."""
from pathlib import Path

import pytest
from django.utils import timezone

from fiscal_disbursement import services as fiscal
from fiscal_disbursement import tasks as fiscal_tasks
from tests.fiscal_disbursement.helpers import draft, payee_csv, payee_rows
from tests.stored_uploads import age, stored

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_payee_file_replaced_in_a_draft_is_removed_after_a_day_and_one_stored_again_is_kept(finance):
    first, second = payee_rows(finance, 2), payee_rows(finance, 3)
    request = draft(finance, first)
    fiscal.load_payee_file(request_id=request.pk, user=finance.clerk, filename="payees.csv",
                           data=payee_csv(second), now=timezone.now())
    age(fiscal.UPLOAD_FOLDER, 2)
    other = draft(finance, first)  # the first file again, for another request: in use, not old
    assert fiscal_tasks.remove_unreferenced_uploads_task() == 0
    request.refresh_from_db()
    assert stored(fiscal.UPLOAD_FOLDER) == {Path(request.upload_path).name, Path(other.upload_path).name}

    fiscal.load_payee_file(request_id=other.pk, user=finance.clerk, filename="payees.csv",
                           data=payee_csv(second), now=timezone.now())
    age(fiscal.UPLOAD_FOLDER, 2)
    assert fiscal_tasks.remove_unreferenced_uploads_task() == 1  # the first file: named by nothing now
    assert stored(fiscal.UPLOAD_FOLDER) == {Path(request.upload_path).name}
