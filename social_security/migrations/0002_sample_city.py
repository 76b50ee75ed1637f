"""A sample city's rules: 济南 (370100), 2025 and 2026.

Sample figures for demonstration and tests, shaped like a real city's published table but not copied from
one: rates close to the national ones (pension 16%/8%, medical 7%/2% incl. maternity, unemployment
0.7%/0.3% changing to 0.5%/0.5% on 2026-07-01, work injury 0.2% changing to 0.4% on 2026-07-01), flexible
employment pension 20% (8% to the personal account) and medical 9%, an average monthly wage of 7,500.00
(2025) and 7,800.00 (2026) yuan with floor and ceiling at 60% and 300% of it.
"""
from datetime import date, timedelta
from decimal import Decimal

from django.db import migrations

D = Decimal
RATES = [
    # type, effective_from, employer, individual, flexible, flexible to personal account
    ("pension", date(2025, 1, 1), D("0.16"), D("0.08"), D("0.20"), D("0.08")),
    ("medical", date(2025, 1, 1), D("0.07"), D("0.02"), D("0.09"), D("0")),
    ("unemployment", date(2025, 1, 1), D("0.007"), D("0.003"), D("0"), D("0")),
    ("unemployment", date(2026, 7, 1), D("0.005"), D("0.005"), D("0"), D("0")),
    ("work_injury", date(2025, 1, 1), D("0.002"), D("0"), D("0"), D("0")),
    ("work_injury", date(2026, 7, 1), D("0.004"), D("0"), D("0"), D("0")),
]
BASES = [(2025, 750000), (2026, 780000)]


def load(apps, schema_editor):
    Region = apps.get_model("social_security", "Region")
    ContributionRate = apps.get_model("social_security", "ContributionRate")
    ContributionBase = apps.get_model("social_security", "ContributionBase")
    region, _ = Region.objects.get_or_create(code="370100", defaults={"name": "济南市 (Jinan)"})
    by_type = {}
    for insurance_type, start, employer, individual, flexible, account in RATES:
        by_type.setdefault(insurance_type, []).append(start)
    for insurance_type, start, employer, individual, flexible, account in RATES:
        later = [s for s in by_type[insurance_type] if s > start]
        ContributionRate.objects.get_or_create(
            region=region, insurance_type=insurance_type, effective_from=start,
            defaults={"employer_rate": employer, "individual_rate": individual, "flexible_rate": flexible,
                      "flexible_account_rate": account,
                      "effective_to": min(later) - timedelta(days=1) if later else None})
    for year, wage in BASES:
        ContributionBase.objects.get_or_create(region=region, year=year, defaults={
            "average_wage_fen": wage, "floor_fen": wage * 6 // 10, "ceiling_fen": wage * 3})


def unload(apps, schema_editor):
    Region = apps.get_model("social_security", "Region")
    region = Region.objects.filter(code="370100").first()
    if region:
        region.rates.all().delete()
        region.bases.all().delete()
        region.delete()


class Migration(migrations.Migration):
    dependencies = [("social_security", "0001_rules")]
    operations = [migrations.RunPython(load, unload)]
