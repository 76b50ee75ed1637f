import pytest

from payroll.models import UnionSettings
from payroll.templates_files import EXAMPLE_USCC
from tests import factories as f
from tests.payroll.builders import employee_row
from tests.payroll.helpers import OPERATOR_CODE, Employer
from treasury.access import roles
from treasury.models import Organization, Wallet
from treasury.services.wallets import register_wallet


@pytest.fixture
def rows():
    """Three valid employee rows in template column order."""
    return [employee_row(i) for i in range(3)]


@pytest.fixture
def employer(ecny_sandbox, transactional_db):
    """An employer with an operator and an approver user, and a corporate wallet holding 10 million yuan."""
    operator = f.make_operator(code=OPERATOR_CODE)
    org = Organization.objects.create(name="示范科技", org_type=Organization.Type.EMPLOYER, uscc=EXAMPLE_USCC)
    wallet = register_wallet(wallet_id="1009999999999999", wallet_type=Wallet.Type.CORPORATE, operator=operator,
                             holder_org=org, holder_name=org.name)
    ecny_sandbox.admin.open_wallet(wallet_id=wallet.wallet_id, wallet_type="WT09", holder_name=org.name,
                                   balance_fen=10_000_000_00)
    return Employer(org=org, wallet=wallet, sandbox=ecny_sandbox,
                    operator_user=f.make_user(role=roles.EMPLOYER_OPERATOR, organization=org),
                    approver=f.make_user(role=roles.EMPLOYER_APPROVER, organization=org))


@pytest.fixture
def grassroots(employer):
    """The employer's grassroots union with default rules, and the higher-level union's wallet."""
    operator = f.make_operator(code=OPERATOR_CODE)
    union_org = Organization.objects.create(name="示范科技工会", org_type=Organization.Type.UNION, uscc=f.make_uscc())
    higher_org = Organization.objects.create(name="市总工会", org_type=Organization.Type.UNION, uscc=f.make_uscc())
    wallets = []
    for number, org in (("1009999999999001", union_org), ("1009999999999002", higher_org)):
        wallets.append(register_wallet(wallet_id=number, wallet_type=Wallet.Type.CORPORATE, operator=operator,
                                       holder_org=org, holder_name=org.name))
        employer.sandbox.admin.open_wallet(wallet_id=number, wallet_type="WT09", holder_name=org.name)
    return UnionSettings.objects.create(union=union_org, employer=employer.org, wallet=wallets[0],
                                        higher_union_wallet=wallets[1])
