from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "treasury.access"
    label = "access"
    verbose_name = "用户与权限 (users and roles)"

    def ready(self):
        from . import login_lock  # noqa: F401  (connects the failed sign-in receiver)
