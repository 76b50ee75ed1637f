from django.apps import AppConfig


class FlexibleEmploymentConfig(AppConfig):
    # A sub-app with its own label and migrations: flexible-employment individuals (灵活就业人员).
    name = "social_security.flexible"
    label = "social_flexible"
    verbose_name = "灵活就业社保缴费 (flexible-employment premiums)"
