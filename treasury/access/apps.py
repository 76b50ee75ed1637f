from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "treasury.access"
    label = "access"
    verbose_name = "用户与权限 (users and roles)"
