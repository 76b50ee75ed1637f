from django.db import migrations


def _room_for_report_numbers(apps, schema_editor):
    # A payment line is written three times: imported, given its transfer (an indexed column: a new
    # version, on the same page when it has room), and given its result report's number when paying
    # ends (no index: in place, HOT, when the page has room). Filled to 100%, neither found room, and
    # numbering a 50,000-line request's reports rewrote every line into every index, on one core while
    # nothing else could run. At 50% (psql, copies of bench/disbursement.py's 50,000 lines): report
    # numbers 518 -> 169 ms, transfers 582 -> 493 ms, the import's insert 359 -> 402 ms.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE fiscal_disbursement_paymentline SET (fillfactor = 50)")


def _back_to_100(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE fiscal_disbursement_paymentline RESET (fillfactor)")


class Migration(migrations.Migration):

    dependencies = [
        ("fiscal_disbursement", "0003_lines_index_only_what_is_used"),
    ]

    operations = [
        migrations.RunPython(_room_for_report_numbers, _back_to_100),
    ]
