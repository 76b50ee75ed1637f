from django.urls import path, re_path

from . import views

app_name = "receipts"

NUMBER = r"[RB]\d{18,24}"

urlpatterns = [
    path("verify/", views.verify_upload, name="verify"),
    re_path(rf"^verify/(?P<number>{NUMBER})/$", views.verify_code, name="verify-code"),
    re_path(rf"^(?P<number>{NUMBER})\.pdf$", views.download, name="download"),
]
