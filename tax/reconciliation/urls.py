"""Reconciliation pages, included by tax/urls.py under reconciliation/ (names in the tax namespace)."""
from django.urls import path

from . import views

urlpatterns = [
    path("", views.run_list, name="reconciliation"),
    path("run/", views.run_now, name="reconciliation-run-now"),
    path("runs/<int:run_id>/", views.run_detail, name="reconciliation-run"),
    path("runs/<int:run_id>/progress/", views.run_progress, name="reconciliation-run-progress"),
    path("runs/<int:run_id>/report.csv", views.run_report_csv, name="reconciliation-run-csv"),
    path("runs/<int:run_id>/report.pdf", views.run_report_pdf, name="reconciliation-run-pdf"),
    path("cases/", views.case_list, name="reconciliation-cases"),
    path("cases/<int:case_id>/", views.case_detail, name="reconciliation-case"),
    path("cases/<int:case_id>/investigate/", views.case_investigate, name="reconciliation-case-investigate"),
    path("cases/<int:case_id>/resolve/", views.case_resolve, name="reconciliation-case-resolve"),
    path("cases/<int:case_id>/corrections/", views.case_correction_propose, name="reconciliation-correction-propose"),
    path("cases/<int:case_id>/corrections/<int:correction_id>/approve/", views.case_correction_decide,
         {"decision": "approve"}, name="reconciliation-correction-approve"),
    path("cases/<int:case_id>/corrections/<int:correction_id>/reject/", views.case_correction_decide,
         {"decision": "reject"}, name="reconciliation-correction-reject"),
]
