from rest_framework.routers import SimpleRouter

from .api import ReceiptViewSet

router = SimpleRouter()
router.register("receipts", ReceiptViewSet, basename="receipt-api")

urlpatterns = router.urls
