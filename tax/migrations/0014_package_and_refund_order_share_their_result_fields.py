# The batch package and the refund order share their head and result fields (tax.models.ReceivedPackage):
# the package's two result flags take the refund order's labels. No SQL.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('tax', '0013_refunded_deduction_found_through_a_voucher_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='deductionpackage',
            name='result_acknowledged',
            field=models.BooleanField(default=False, verbose_name='结果已确认 (result acknowledged)'),
        ),
        migrations.AlterField(
            model_name='deductionpackage',
            name='result_pending',
            field=models.BooleanField(default=False, verbose_name='结果待发送 (result waiting to be sent)'),
        ),
    ]
