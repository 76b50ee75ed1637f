from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from .login_lock import current_lock, lock_message


class SignInForm(AuthenticationForm):
    """Django's sign-in form, saying so when the username is locked (login_lock), by this attempt or before it,
    instead of "wrong password"."""

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            until = current_lock(self.cleaned_data.get("username"))
            if until:
                raise ValidationError(lock_message(until), code="locked") from None
            raise
