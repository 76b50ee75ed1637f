from django.db import migrations


def _room_for_two_updates(apps, schema_editor):
    # A transfer is written once and updated twice soon after (claimed, then settled). With 70% of
    # each page filled, about half of those updates found no room on their page and became
    # ordinary updates, each adding an entry to every index of the table. At 30% every row has
    # room for both of its new versions: measured on PostgreSQL 15 with bench/transfers.py, every
    # update is then in place (HOT). The price is a heap about twice as large.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE treasury_transfer SET (fillfactor = 30)")


def _back_to_70(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE treasury_transfer SET (fillfactor = 70)")


class Migration(migrations.Migration):

    dependencies = [
        ("treasury", "0003_transfer_outbox_and_fewer_indexes"),
    ]

    operations = [
        migrations.RunPython(_room_for_two_updates, _back_to_70),
    ]
