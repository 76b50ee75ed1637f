import pytest
import time_machine

from tests import factories as f
from tests.tax.helpers import ENTRUST_NOON, OPERATOR_CODE, TAX_ORG_CODE, TREASURY_CODE, Tax
from treasury.access import roles
from treasury.models import LedgerAccount, Organization, Wallet
from treasury.services.wallets import register_wallet


@pytest.fixture(autouse=True)
def on_entrust_date(request):
    """Every tax test runs on ENTRUST_DATE, from its noon on (see tests.tax.helpers.ENTRUST_NOON). The sandboxes
    and the live server are threads of this process, so they see the same clock. Not a test with a real Celery
    worker: that is another process, on the real clock, and the test's times must be comparable with its own."""
    if "worker_factory" in request.fixturenames:
        yield
        return
    with time_machine.travel(ENTRUST_NOON, tick=True):
        yield


@pytest.fixture
def tax(ecny_sandbox, transactional_db):
    """A tax authority with two staff, another authority's staff, and a treasury whose single account
    (国库单一账户) is a corporate wallet opened at the sandbox operator."""
    operator = f.make_operator(code=OPERATOR_CODE)
    authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, name="示范市税务局", code=TAX_ORG_CODE)
    other = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, name="邻市税务局", code="13702000000")
    treasury_org = f.make_organization(org_type=Organization.Type.TREASURY, name="国家金库示范市中心支库",
                                       code=TREASURY_CODE)
    wallet_id = f.make_wallet_id(operator_code=OPERATOR_CODE)
    treasury_wallet = register_wallet(wallet_id=wallet_id, wallet_type=Wallet.Type.CORPORATE, operator=operator,
                                      holder_org=treasury_org, holder_name=treasury_org.name,
                                      account_kind=LedgerAccount.Kind.TREASURY_SINGLE)
    ecny_sandbox.admin.open_wallet(wallet_id=wallet_id, wallet_type="WT09", holder_name=treasury_org.name)
    return Tax(authority=authority, treasury_org=treasury_org, treasury_wallet=treasury_wallet,
               staff=f.make_user(role=roles.TAX_STAFF, organization=authority),
               other_staff=f.make_user(role=roles.TAX_STAFF, organization=other), ecny=ecny_sandbox)


@pytest.fixture
def tips_outbox(monkeypatch):
    """Stands in for the TIPS client: records every 2102 sent; `.replies` decides the answers."""
    from adapters.tips.interface import Acknowledgement
    from tax import services

    class FakeTips:
        def __init__(self):
            self.sent = []
            self.fail_next = 0

        def send_batch_result(self, result):
            from adapters.tips.interface import TipsUnavailable

            self.sent.append(result)
            if self.fail_next:
                self.fail_next -= 1
                raise TipsUnavailable("connection refused")
            return Acknowledgement(ori_msg_id="0" * 20, result="90000")

    fake = FakeTips()
    monkeypatch.setattr(services, "_tips", lambda: fake)
    return fake
