"""RegionFund is gone: social_security.FundAccount says where a region's premiums go (its rows were carried
over by social_security 0005, which this migration waits for)."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("social_flexible", "0001_initial"),
        ("social_security", "0005_fund_accounts_from_region_funds"),
    ]

    operations = [migrations.DeleteModel(name="RegionFund")]
