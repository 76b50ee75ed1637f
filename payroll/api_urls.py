from rest_framework.routers import SimpleRouter

from payroll import api

router = SimpleRouter()
router.register("payroll/batches", api.PayrollBatchViewSet, basename="api-payroll-batch")
router.register("payroll/unions", api.UnionViewSet, basename="api-payroll-union")

urlpatterns = router.urls
