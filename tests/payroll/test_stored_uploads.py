"""A payroll file refused as a whole is named by no batch: the daily task removes it once a day old; a rejected
batch's file (its error report reads it) stays."""
from pathlib import Path

import pytest
from django.utils import timezone

from payroll import services as payroll
from payroll import tasks as payroll_tasks
from payroll.models import BatchState
from payroll.parsing import PayrollFileRefused
from tests.payroll.helpers import staff, upload
from tests.stored_uploads import age, stored

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refused_payroll_file_is_removed_after_a_day_and_a_rejected_batchs_file_kept(employer):
    rejected = upload(employer, staff(employer, 2, skip=(1,)))  # line 2's wallet unknown; the report reads the file
    assert rejected.state == BatchState.REJECTED
    with pytest.raises(PayrollFileRefused):  # not a spreadsheet: no batch names it
        payroll.import_payroll_file(employer=employer.org, user=employer.operator_user, filename="x.xlsx",
                                    data=b"PK\x03\x04 not a workbook", now=timezone.now())
    assert len(stored(payroll.UPLOAD_FOLDER)) == 2

    assert payroll_tasks.remove_unreferenced_uploads_task() == 0  # not a day old yet
    age(payroll.UPLOAD_FOLDER, 2)
    assert payroll_tasks.remove_unreferenced_uploads_task() == 1
    assert stored(payroll.UPLOAD_FOLDER) == {Path(rejected.upload_path).name}
