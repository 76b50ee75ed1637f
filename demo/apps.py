from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`manage.py demo`: demo data and an end-to-end run across the domains (development only)."""

    name = "demo"
