import pytest
from django.contrib.auth.models import User

from tests import factories as f


@pytest.fixture
def superuser_client(client, db):
    client.force_login(User.objects.create_superuser("root", "root@example.invalid", f.PASSWORD))
    return client


def test_reference_data_pages_render(superuser_client):
    transfer = f.make_transfer(state="settled")
    pages = ["/admin/treasury/organization/", "/admin/treasury/person/", "/admin/treasury/wallet/",
             "/admin/treasury/ledgeraccount/", "/admin/treasury/transfer/",
             f"/admin/treasury/transfer/{transfer.pk}/change/",
             f"/admin/treasury/ledgeraccount/{transfer.payer.ledger_account.pk}/change/"]
    for url in pages:
        assert superuser_client.get(url).status_code == 200, url


def test_transfers_are_read_only_in_admin(superuser_client):
    transfer = f.make_transfer(state="settled", amount_fen=500)
    assert superuser_client.get("/admin/treasury/transfer/add/").status_code == 403
    superuser_client.post(f"/admin/treasury/transfer/{transfer.pk}/change/", {"amount_fen": 1})
    transfer.refresh_from_db()
    assert transfer.amount_fen == 500
    assert superuser_client.post(f"/admin/treasury/transfer/{transfer.pk}/delete/", {"post": "yes"}).status_code == 403


def test_ledger_balance_cannot_be_edited_in_admin(superuser_client):
    account = f.make_wallet().ledger_account
    html = superuser_client.get(f"/admin/treasury/ledgeraccount/{account.pk}/change/").content.decode()
    assert 'name="balance_fen"' not in html


def test_person_list_masks_resident_ids(superuser_client):
    person = f.make_person(name="赵云龙")
    html = superuser_client.get("/admin/treasury/person/").content.decode()
    assert person.resident_id not in html and "赵*龙" in html


def test_user_page_edits_membership_inline(superuser_client):
    user = f.make_user(role="employer_operator")
    html = superuser_client.get(f"/admin/auth/user/{user.pk}/change/").content.decode()
    assert 'name="membership-0-organization"' in html
    assert user.membership.organization.name in superuser_client.get("/admin/auth/user/").content.decode()


def test_ledger_account_list_masks_a_persons_wallet_and_name(superuser_client):
    wallet = f.make_wallet(holder_person=f.make_person(name="赵云龙"))
    account = wallet.ledger_account
    html = superuser_client.get("/admin/treasury/ledgeraccount/").content.decode()
    assert wallet.wallet_id not in html and f"wallet:{wallet.masked_wallet_id}" in html
    assert account.name not in html and "赵*龙" in html
    found = superuser_client.get("/admin/treasury/ledgeraccount/", {"q": account.code}).content.decode()
    assert f"/admin/treasury/ledgeraccount/{account.pk}/change/" in found  # found by its whole code
    assert f"/admin/treasury/ledgeraccount/{account.pk}/change/" not in superuser_client.get(
        "/admin/treasury/ledgeraccount/", {"q": wallet.wallet_id[:8]}).content.decode()  # not by a part of it


def test_every_admin_list_is_named_in_the_plural_in_both_languages(superuser_client):
    """Django's default plural adds an "s" after the closing parenthesis: "账户 (ledger account)s"."""
    from django.contrib import admin

    names = {model._meta.label: str(model._meta.verbose_name_plural) for model in admin.site._registry}
    assert [label for label, name in names.items() if name.endswith(")s")] == []
    assert "账户 (ledger accounts)" in superuser_client.get("/admin/").content.decode()
