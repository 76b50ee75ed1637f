"""A transfer counts the reversal attempts the operator refused, so that `reverse_transfer` asks a later one
under a new request id (`<key>:reversal:2`, ...) instead of the refused id, whose refusal the operator repeats.

With a database default: the bulk paths insert transfers by COPY naming their columns, and the column is
added without rewriting the table (PostgreSQL 11 and later store the default in the catalog).
"""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("treasury", "0009_transfers_name_their_parents_without_foreign_keys"),
    ]

    operations = [
        migrations.AddField(
            model_name="transfer",
            name="reversal_refusals",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
    ]
