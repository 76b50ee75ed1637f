"""The flexible app's RegionFund rows become FundAccount rows (one table says where a region's premiums go)."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests import factories as f
from treasury.models import Organization

BEFORE = [("social_security", "0004_reconciliation"), ("social_flexible", "0001_initial")]
AFTER = [("social_security", "0005_fund_accounts_from_region_funds"),
         ("social_flexible", "0002_region_fund_into_fund_account")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_apps(transactional_db):
    apps = _migrate(BEFORE)
    yield apps
    _migrate(executor_leaf_nodes())


def executor_leaf_nodes():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def _region(apps, code):
    Region = apps.get_model("social_security", "Region")
    return Region.objects.get_or_create(code=code, defaults={"name": f"地区{code}"})[0]


def test_region_funds_are_carried_over_and_agreeing_ones_kept(old_apps):
    authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, code="13701000000")
    wallet_a, wallet_b = f.make_wallet(holder_org=authority), f.make_wallet(holder_org=authority)
    RegionFund = old_apps.get_model("social_flexible", "RegionFund")
    FundAccount = old_apps.get_model("social_security", "FundAccount")
    only_flexible, both = _region(old_apps, "370100"), _region(old_apps, "370200")
    RegionFund.objects.create(region=only_flexible, collecting_authority_id=authority.pk, fund_wallet_id=wallet_a.pk)
    RegionFund.objects.create(region=both, collecting_authority_id=authority.pk, fund_wallet_id=wallet_b.pk)
    FundAccount.objects.create(region=both, tax_authority_id=authority.pk, wallet_id=wallet_b.pk)

    new_apps = _migrate(AFTER)

    rows = sorted(new_apps.get_model("social_security", "FundAccount").objects
                  .values_list("region__code", "tax_authority_id", "wallet_id"))
    assert rows == [("370100", authority.pk, wallet_a.pk), ("370200", authority.pk, wallet_b.pk)]
    with pytest.raises(LookupError):
        new_apps.get_model("social_flexible", "RegionFund")


def test_a_region_with_two_different_answers_stops_the_migration(old_apps):
    authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, code="13701000000")
    wallet_a, wallet_b = f.make_wallet(holder_org=authority), f.make_wallet(holder_org=authority)
    region = _region(old_apps, "370100")
    old_apps.get_model("social_flexible", "RegionFund").objects.create(
        region=region, collecting_authority_id=authority.pk, fund_wallet_id=wallet_a.pk)
    old_apps.get_model("social_security", "FundAccount").objects.create(
        region=region, tax_authority_id=authority.pk, wallet_id=wallet_b.pk)
    with pytest.raises(RuntimeError, match="differ"):
        _migrate(AFTER)
    # Nothing half-done: the flexible table and its row are still there.
    assert old_apps.get_model("social_flexible", "RegionFund").objects.count() == 1
    # Once an administrator makes them agree, it goes through.
    old_apps.get_model("social_security", "FundAccount").objects.filter(region=region).update(wallet_id=wallet_a.pk)
    new_apps = _migrate(AFTER)
    assert new_apps.get_model("social_security", "FundAccount").objects.get().wallet_id == wallet_a.pk


def test_going_back_gives_the_flexible_app_its_region_funds_again(old_apps):
    authority = f.make_organization(org_type=Organization.Type.TAX_AUTHORITY, code="13701000000")
    wallet = f.make_wallet(holder_org=authority)
    new_apps = _migrate(AFTER)
    region = _region(new_apps, "370100")
    new_apps.get_model("social_security", "FundAccount").objects.create(region=region, tax_authority_id=authority.pk,
                                                                         wallet_id=wallet.pk)
    back = _migrate(BEFORE)
    assert list(back.get_model("social_flexible", "RegionFund").objects.values_list(
        "region__code", "collecting_authority_id", "fund_wallet_id")) == [("370100", authority.pk, wallet.pk)]
