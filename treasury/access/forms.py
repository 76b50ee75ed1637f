from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.utils import timezone

from .login_lock import lock_message, locked_until


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
