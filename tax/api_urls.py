from django.urls import path
from rest_framework.routers import SimpleRouter

from tax import api
from tax.reconciliation import api as reconciliation_api

router = SimpleRouter()
router.register("tax/agreements", api.TaxAgreementViewSet, basename="api-tax-agreement")
router.register("tax/deductions", api.TaxDeductionViewSet, basename="api-tax-deduction")
router.register("tax/packages", api.DeductionPackageViewSet, basename="api-tax-package")
router.register("tax/reversals", api.TaxReversalViewSet, basename="api-tax-reversal")
router.register("tax/stop-payments", api.StopPaymentViewSet, basename="api-tax-stop-payment")
router.register("tax/refunds", api.RefundOrderViewSet, basename="api-tax-refund")
router.register("tax/reconciliation/runs", reconciliation_api.ReconciliationRunViewSet,
                basename="api-tax-reconciliation-run")
router.register("tax/reconciliation/cases", reconciliation_api.DiscrepancyCaseViewSet,
                basename="api-tax-reconciliation-case")

urlpatterns = router.urls + [
    path("tax/entry-report/", api.EntryReportView.as_view(), name="api-tax-entry-report"),
    path("tax/entry-report/csv/", api.EntryReportCsvView.as_view(), name="api-tax-entry-report-csv"),
    path("tax/entry-report/pdf/", api.EntryReportPdfView.as_view(), name="api-tax-entry-report-pdf"),
    path("tax/own-payments/", api.OwnTaxPaymentView.as_view(), name="api-tax-own-payment"),
    path("tax/my-payments/", api.MyTaxPaymentsView.as_view(), name="api-tax-my-payments"),
    path("tax/my-refunds/", api.MyRefundsView.as_view(), name="api-tax-my-refunds"),
]
