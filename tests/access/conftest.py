import pytest

from tests import factories as f
from treasury.models import Organization


@pytest.fixture
def two_employers(db):
    """Employers A and B, each with a corporate wallet, an operator user and one settled transfer."""
    result = {}
    for key, name in (("a", "甲科技有限公司"), ("b", "乙贸易有限公司")):
        org = f.make_organization(org_type=Organization.Type.EMPLOYER, name=name)
        wallet = f.make_wallet(holder_org=org)
        transfer = f.make_transfer(payer=wallet, payee=f.make_wallet(holder_person=f.make_person(name="王小明")),
                                   state="settled", batch_ref=f"PAY-{key.upper()}-001", amount_fen=5_000_00)
        result[key] = {"org": org, "wallet": wallet, "transfer": transfer,
                       "user": f.make_user(role="employer_operator", organization=org)}
    return result
