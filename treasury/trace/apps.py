from django.apps import AppConfig


class TraceConfig(AppConfig):
    name = "treasury.trace"
    label = "trace"
    verbose_name = "追溯 (trace)"
