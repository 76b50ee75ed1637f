from django.conf import settings
from django.db import models


class Membership(models.Model):
    """Which organization a user works for. Every query a user makes is scoped to it."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="membership")
    organization = models.ForeignKey("treasury.Organization", on_delete=models.PROTECT, related_name="members")

    class Meta:
        verbose_name = "所属机构 (membership)"

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization}"


class PersonalAccount(models.Model):
    """The person a user stands for, when they log in as themselves (role `individual`). Such a user has
    no organization; every query they make is scoped to this person."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_account")
    person = models.OneToOneField("treasury.Person", on_delete=models.PROTECT, related_name="personal_account")

    class Meta:
        verbose_name = "个人用户 (personal account)"

    def __str__(self) -> str:
        return f"{self.user} = {self.person}"


class LoginFailure(models.Model):
    """A failed sign-in for a username, on the sign-in page or the API's token call, kept while it counts toward
    the sign-in lock (treasury/access/login_lock.py). A successful sign-in deletes the username's failures."""

    username = models.CharField(max_length=150)
    ip = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField()

    class Meta:
        verbose_name = "登录失败 (failed sign-in)"
        verbose_name_plural = "登录失败 (failed sign-ins)"
        indexes = [models.Index(fields=["username", "at"], name="login_failure_username_at")]

    def __str__(self) -> str:
        return f"{self.username} {self.at:%Y-%m-%d %H:%M:%S} {self.ip or ''}"
