from rest_framework.routers import SimpleRouter

from payroll import api

router = SimpleRouter()
router.register("payroll/batches", api.PayrollBatchViewSet, basename="api-payroll-batch")

urlpatterns = router.urls
