from django.urls import path
from rest_framework.routers import SimpleRouter

from fiscal_disbursement import api

router = SimpleRouter()
router.register("fiscal/quotas", api.QuotaViewSet, basename="api-fiscal-quota")
router.register("fiscal/requests", api.PaymentRequestViewSet, basename="api-fiscal-request")

urlpatterns = router.urls + [
    path("fiscal/daily-report/", api.DailyReportView.as_view(), name="api-fiscal-daily-report"),
    path("fiscal/daily-report/pdf/", api.DailyReportPdfView.as_view(), name="api-fiscal-daily-report-pdf"),
]
