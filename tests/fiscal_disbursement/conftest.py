import pytest

from fiscal_disbursement import services
from tests import factories as f
from tests.fiscal_disbursement.helpers import AGENCY_CODE, OPERATOR_CODE, QUOTA_ID, UNIT_QUOTA_ID, Finance
from treasury.access import roles
from treasury.models import LedgerAccount, Organization, Wallet
from treasury.services.wallets import register_wallet

FISCAL_WALLET = "2000000000000001"
UNIT_WALLET = "2000000000000002"


@pytest.fixture
def finance(ecny_sandbox, budget_sandbox, transactional_db):
    """A finance bureau (a clerk, two approvers), a budget unit, the fiscal zero-balance account holding
    100 million yuan at the operator and the unit's holding 1,500 yuan, and two quotas synchronised from
    the budget system: a direct-payment quota of 1 million yuan and an authorised-payment quota of
    200,000 yuan."""
    operator = f.make_operator(code=OPERATOR_CODE)
    bureau = f.make_organization(org_type=Organization.Type.FINANCE_BUREAU, name="示范市财政局")
    agency = f.make_organization(org_type=Organization.Type.BUDGET_UNIT, name="示范市民政局", code=AGENCY_CODE)
    wallets = []
    for number, org, kind, balance in ((FISCAL_WALLET, bureau, LedgerAccount.Kind.FISCAL_ZERO_BALANCE, 100_000_000_00),
                                       (UNIT_WALLET, agency, LedgerAccount.Kind.UNIT_ZERO_BALANCE, 1_500_00)):
        wallets.append(register_wallet(wallet_id=number, wallet_type=Wallet.Type.CORPORATE, operator=operator,
                                       holder_org=org, holder_name=org.name, account_kind=kind))
        ecny_sandbox.admin.open_wallet(wallet_id=number, wallet_type="WT09", holder_name=org.name,
                                       balance_fen=balance)
    common = dict(adm_div_code="320100", fiscal_year=2026, agency_code=AGENCY_CODE, agency_name=agency.name,
                  exp_func_code="2080801", exp_eco_code="30305", fund_type_code="1")
    budget_sandbox.admin.create_quota(quota_id=QUOTA_ID, pay_type_code="1", amount_fen=1_000_000_00, **common)
    budget_sandbox.admin.create_quota(quota_id=UNIT_QUOTA_ID, pay_type_code="2", amount_fen=200_000_00, **common)
    from django.utils import timezone

    services.sync_quotas(now=timezone.now())
    return Finance(
        bureau=bureau, agency=agency, fiscal_wallet=wallets[0], unit_wallet=wallets[1],
        clerk=f.make_user(role=roles.FINANCE_CLERK, organization=bureau),
        approver=f.make_user(role=roles.FINANCE_APPROVER, organization=bureau),
        approver2=f.make_user(role=roles.FINANCE_APPROVER, organization=bureau),
        ecny=ecny_sandbox, budget=budget_sandbox,
    )
