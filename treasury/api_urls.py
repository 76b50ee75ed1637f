from rest_framework.routers import SimpleRouter

from treasury import api

router = SimpleRouter()
# "api-" prefix: the pages already use the names "transfer-list" and "transfer-detail".
router.register("transfers", api.TransferViewSet, basename="api-transfer")
router.register("wallets", api.WalletViewSet, basename="api-wallet")
router.register("ledger/accounts", api.LedgerAccountViewSet, basename="api-ledger-account")

urlpatterns = router.urls
