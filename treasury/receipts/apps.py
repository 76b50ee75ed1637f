from django.apps import AppConfig


class ReceiptsConfig(AppConfig):
    name = "treasury.receipts"
    label = "receipts"
    verbose_name = "电子回单 (receipts)"
