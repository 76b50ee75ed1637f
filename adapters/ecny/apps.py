from django.apps import AppConfig


class EcnyConfig(AppConfig):
    name = "adapters.ecny"
    label = "ecny"
    verbose_name = "数字人民币运营机构接口 (e-CNY operator adapter)"
