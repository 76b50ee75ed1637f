from django.urls import path

from . import views

app_name = "trace"

urlpatterns = [
    path("", views.search, name="search"),
    path("transfer/<int:transfer_id>/", views.transfer_trace, name="transfer"),
    path("wallet/<int:wallet_pk>/", views.wallet_trace, name="wallet"),  # by row: no wallet id in an address
    path("document/<path:ref>/", views.document_trace, name="document"),
    path("batch/<path:ref>/", views.document_trace, name="batch"),
    path("verify/", views.verify, name="verify"),
]
