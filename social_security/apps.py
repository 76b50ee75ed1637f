from django.apps import AppConfig


class SocialSecurityConfig(AppConfig):
    name = "social_security"
