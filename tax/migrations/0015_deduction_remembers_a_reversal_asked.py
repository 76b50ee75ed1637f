"""A deduction remembers when a reversal (1021) first asked the operator to give its debit back: until the
reversal is recorded or refused, a refund correction of the same debit waits (it could pay it back twice).
A nullable column: added without rewriting the table, and the batch's COPY, which names its columns, is unchanged.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tax', '0014_package_and_refund_order_share_their_result_fields'),
    ]

    operations = [
        migrations.AddField(
            model_name='taxdeduction',
            name='reversal_asked_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
