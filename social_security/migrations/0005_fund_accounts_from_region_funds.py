"""One table says where a region's premiums go: FundAccount. The flexible-employment app had its own
(social_flexible.RegionFund); its rows are carried over here before that table is dropped
(social_flexible 0002 runs after this one)."""
from django.db import migrations


def region_funds_to_fund_accounts(apps, schema_editor):
    RegionFund = apps.get_model("social_flexible", "RegionFund")
    FundAccount = apps.get_model("social_security", "FundAccount")
    for fund in RegionFund.objects.order_by("pk"):
        account = FundAccount.objects.filter(region_id=fund.region_id).first()
        if account is None:
            if FundAccount.objects.filter(wallet_id=fund.fund_wallet_id).exists():
                raise RuntimeError(f"region {fund.region_id}: its flexible fund wallet {fund.fund_wallet_id} is "
                                   "another region's fund account; give the region its own wallet first")
            FundAccount.objects.create(region_id=fund.region_id, tax_authority_id=fund.collecting_authority_id,
                                       wallet_id=fund.fund_wallet_id)
        elif (account.tax_authority_id, account.wallet_id) != (fund.collecting_authority_id, fund.fund_wallet_id):
            # Two answers for one region: an administrator decides which is right, not a migration.
            raise RuntimeError(f"region {fund.region_id}: the employers' fund account (authority "
                               f"{account.tax_authority_id}, wallet {account.wallet_id}) and the flexible region fund "
                               f"(authority {fund.collecting_authority_id}, wallet {fund.fund_wallet_id}) differ; "
                               "make them agree before migrating")


def fund_accounts_to_region_funds(apps, schema_editor):
    RegionFund = apps.get_model("social_flexible", "RegionFund")
    FundAccount = apps.get_model("social_security", "FundAccount")
    for account in FundAccount.objects.order_by("pk"):
        RegionFund.objects.get_or_create(region_id=account.region_id, defaults={
            "collecting_authority_id": account.tax_authority_id, "fund_wallet_id": account.wallet_id})


class Migration(migrations.Migration):

    dependencies = [
        ("social_security", "0004_reconciliation"),
        ("social_flexible", "0001_initial"),
    ]

    operations = [migrations.RunPython(region_funds_to_fund_accounts, fund_accounts_to_region_funds)]
