from django.urls import path

from . import api

urlpatterns = [
    path("trace/transfers/<int:transfer_id>/", api.TransferTraceView.as_view(), name="api-trace-transfer"),
    path("trace/wallets/<str:wallet_id>/", api.WalletTraceView.as_view(), name="api-trace-wallet"),
    path("trace/documents/<path:ref>/", api.DocumentTraceView.as_view(), name="api-trace-document"),
    path("trace/search/", api.TraceSearchView.as_view(), name="api-trace-search"),
    path("trace/verify/", api.VerifyTraceView.as_view(), name="api-trace-verify"),
    path("trace/checkpoints/", api.CheckpointListView.as_view(), name="api-trace-checkpoints"),
    path("trace/public-key/", api.PublicKeyView.as_view(), name="api-trace-public-key"),
]
