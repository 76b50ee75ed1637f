from django.db import migrations


def _room_for_balance_updates(apps, schema_editor):
    # A payee's ledger account is inserted with its wallet and updated once its first transfer settles
    # (the balance). With pages filled to 100%, three quarters of those updates found no room on their
    # page and wrote an entry into each of the table's five indexes; at 50% every one is in place (HOT).
    # bench/payroll.py --lines 100000, alternating runs: HOT 25% -> 100% of 100,120 updates, paying
    # 17.9-18.4 s -> 16.5-17.1 s, PostgreSQL CPU 21.4-21.8 s -> 19.7-20.2 s.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE treasury_ledgeraccount SET (fillfactor = 50)")


def _back_to_100(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE treasury_ledgeraccount RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ("treasury", "0006_outbox_batch_ref"),
    ]

    operations = [
        migrations.RunPython(_room_for_balance_updates, _back_to_100),
    ]
