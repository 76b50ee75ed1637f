from django.contrib.auth import views as auth_views
from django.urls import path

from treasury import views as treasury_views

from .forms import PasswordChangeForm, SignInForm

urlpatterns = [
    path("", treasury_views.dashboard, name="dashboard"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=SignInForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Every signed-in user, auditors too (not a write to the books): old password, new one twice, the validators.
    path("password/", auth_views.PasswordChangeView.as_view(form_class=PasswordChangeForm),
         name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
]
