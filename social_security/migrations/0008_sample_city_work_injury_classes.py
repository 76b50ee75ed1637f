"""The sample city's (370100) work-injury base rates by industry risk class (行业风险类别 一类..八类).

Sample figures shaped like the national scale of base rates (0.2% for class 1 up to 1.9% for class 8), not
copied from a city's table. From 2026-07-01 class 1 goes to 0.4%, the same change the sample city's work-injury
row (0002) has, so an employer with no class set pays what it paid before the class table existed.
"""
from datetime import date, timedelta
from decimal import Decimal

from django.db import migrations

RATES_2025 = ["0.002", "0.004", "0.007", "0.009", "0.011", "0.013", "0.016", "0.019"]
VERSIONS = [(risk_class, date(2025, 1, 1), Decimal(rate)) for risk_class, rate in enumerate(RATES_2025, start=1)]
VERSIONS.append((1, date(2026, 7, 1), Decimal("0.004")))


def load(apps, schema_editor):
    Region = apps.get_model("social_security", "Region")
    WorkInjuryClassRate = apps.get_model("social_security", "WorkInjuryClassRate")
    region = Region.objects.filter(code="370100").first()
    if region is None:
        return
    for risk_class, start, rate in VERSIONS:
        later = [s for c, s, _ in VERSIONS if c == risk_class and s > start]
        WorkInjuryClassRate.objects.get_or_create(
            region=region, risk_class=risk_class, effective_from=start,
            defaults={"employer_rate": rate, "effective_to": min(later) - timedelta(days=1) if later else None})


def unload(apps, schema_editor):
    apps.get_model("social_security", "WorkInjuryClassRate").objects.filter(region__code="370100").delete()


class Migration(migrations.Migration):
    dependencies = [("social_security", "0007_work_injury_risk_classes")]
    operations = [migrations.RunPython(load, unload)]
