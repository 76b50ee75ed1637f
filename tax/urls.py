from django.urls import include, path

from . import views

app_name = "tax"
urlpatterns = [
    path("", views.agreement_list, name="agreement-list"),
    path("agreements.csv", views.agreement_csv, name="agreement-csv"),
    path("agreements/new/", views.agreement_sign, name="agreement-sign"),
    path("agreements/<int:agreement_id>/", views.agreement_detail, name="agreement-detail"),
    path("agreements/<int:agreement_id>/<str:action>/", views.agreement_action, name="agreement-action"),
    path("deductions/", views.deduction_list, name="deduction-list"),
    path("deductions/deductions.csv", views.deduction_csv, name="deduction-csv"),
    path("deductions/<int:deduction_id>/", views.deduction_detail, name="deduction-detail"),
    path("reversals/", views.reversal_list, name="reversal-list"),
    path("packages/", views.package_list, name="package-list"),
    path("packages/<int:package_id>/", views.package_detail, name="package-detail"),
    path("packages/<int:package_id>/progress/", views.package_progress, name="package-progress"),
    path("entries/", views.entry_report, name="entry-report"),
    path("entries/report.csv", views.entry_report_download, name="entry-report-csv"),
    path("entries/report.pdf", views.entry_report_pdf_download, name="entry-report-pdf"),
    path("own-tax/", views.own_tax, name="own-tax"),
    path("mine/", views.my_tax, name="mine"),
    path("refunds/", views.refund_list, name="refund-list"),
    path("refunds/<int:order_id>/", views.refund_detail, name="refund-detail"),
    path("refunds/<int:order_id>/<str:action>/", views.refund_action, name="refund-action"),
    path("reconciliation/", include("tax.reconciliation.urls")),
]
