import pytest

from tests.payroll.builders import employee_row


@pytest.fixture
def rows():
    """Three valid employee rows in template column order."""
    return [employee_row(i) for i in range(3)]
