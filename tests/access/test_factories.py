import pytest

from tests import factories as f
from treasury import identifiers


@pytest.mark.django_db
def test_factories_make_valid_rows():
    org = f.make_organization(org_type="budget_unit")
    org.full_clean()
    assert identifiers.validate_uscc(org.uscc) == org.uscc
    person = f.make_person()
    person.full_clean()
    assert identifiers.validate_resident_id(person.resident_id).number == person.resident_id
    operator = f.make_operator(code="205")
    for wallet in (f.make_wallet(holder_org=org, operator=operator), f.make_wallet(holder_person=person, operator=operator)):
        wallet.full_clean()
        assert len(wallet.wallet_id) == 16 and wallet.wallet_id.startswith("205")
        assert wallet.ledger_account.code == f"wallet:{wallet.wallet_id}" and wallet.ledger_account.kind == "wallet"
    assert f.make_operator(code="205") == operator  # one operator per code


@pytest.mark.django_db
def test_make_user_gives_role_and_membership():
    user = f.make_user(role="finance_clerk")
    assert set(user.groups.values_list("name", flat=True)) == {"finance_clerk"}
    assert user.membership.organization.org_type == "finance_bureau"
    assert user.check_password(f.PASSWORD)
    assert not hasattr(f.make_user(role="auditor"), "membership")


@pytest.mark.django_db
def test_make_transfer_in_a_given_state():
    transfer = f.make_transfer(state="unknown", amount_fen=42)
    transfer.refresh_from_db()
    assert transfer.state == "unknown" and transfer.amount_fen == 42
    assert transfer.organization == transfer.payer.holder_org
