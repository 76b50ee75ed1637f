from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .login_lock import locked_until


def lock_message(until) -> str:
    return _("Too many failed sign-ins for this user: try again after %(time)s.") % {
        "time": timezone.localtime(until).strftime("%H:%M")}


class SignInForm(AuthenticationForm):
    """Django's sign-in form, saying so when the username is locked (login_lock), by this attempt or before it,
    instead of "wrong password"."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            username = self.cleaned_data.get("username")
            until = locked_until(username, now=timezone.now()) if username else None
            if until:
                raise ValidationError(lock_message(until), code="locked") from None
            raise
