from django.apps import AppConfig


class TipsConfig(AppConfig):
    name = "adapters.tips"
    label = "tips"
    verbose_name = "财税库银横向联网接口 (TIPS tax adapter)"
