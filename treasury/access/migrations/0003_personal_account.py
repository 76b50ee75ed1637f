import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def create_individual_role(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name="individual")


class Migration(migrations.Migration):
    dependencies = [
        ("access", "0002_roles"),
        ("treasury", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PersonalAccount",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("person", models.OneToOneField(on_delete=django.db.models.deletion.PROTECT,
                                                related_name="personal_account", to="treasury.person")),
                ("user", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="personal_account", to=settings.AUTH_USER_MODEL)),
            ],
            options={"verbose_name": "个人用户 (personal account)"},
        ),
        migrations.RunPython(create_individual_role, migrations.RunPython.noop),
    ]
