from django.contrib.auth import authenticate
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from rest_framework.authtoken.models import Token

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


class _EndsApiToken:
    """A new password ends the user's API token, as it ends their other sessions: whoever took a token with the
    old password (the reason to change it) has no way in left. The user takes a new token with the new one."""

    def save(self, commit=True):
        user = super().save(commit)
        if commit:
            Token.objects.filter(user=user).delete()
        return user


class PasswordChangeForm(_EndsApiToken, auth_forms.PasswordChangeForm):
    """The user's own change of password (/password/). The old password is checked as a sign-in is (login_lock):
    a wrong one counts toward the lock and none is taken while locked, or a desk left signed in would let anyone
    guess the password there without end."""

    def clean_old_password(self):
        old_password = self.cleaned_data["old_password"]
        username = self.user.get_username()
        if authenticate(None, username=username, password=old_password) != self.user:
            until = current_lock(username)
            if until:
                raise ValidationError(lock_message(until), code="locked")
            raise ValidationError(self.error_messages["password_incorrect"], code="password_incorrect")
        return old_password


class AdminPasswordChangeForm(_EndsApiToken, auth_forms.AdminPasswordChangeForm):
    """An administrator's new password for a user (the admin site)."""
