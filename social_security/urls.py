from django.urls import path

from social_security import reconciliation_views as recon
from social_security import views

app_name = "social"

urlpatterns = [
    path("declarations/", views.declaration_list, name="declaration-list"),
    path("declarations/new/", views.declaration_new, name="declaration-new"),
    path("declarations/template.<str:file_format>", views.declaration_template, name="declaration-template"),
    path("declarations/<int:declaration_id>/", views.declaration_detail, name="declaration-detail"),
    path("declarations/<int:declaration_id>/lines/", views.declaration_add_line, name="declaration-add-line"),
    path("declarations/<int:declaration_id>/lines/<int:line_id>/remove/", views.declaration_remove_line,
         name="declaration-remove-line"),
    path("declarations/<int:declaration_id>/<str:action>/", views.declaration_action, name="declaration-action"),
    path("reconciliation/", recon.run_list, name="reconciliation"),
    path("reconciliation/run/", recon.run_now, name="reconciliation-run-now"),
    path("reconciliation/runs/<int:run_id>/", recon.run_detail, name="reconciliation-run"),
    path("reconciliation/runs/<int:run_id>/report.csv", recon.run_report_csv, name="reconciliation-run-csv"),
    path("reconciliation/runs/<int:run_id>/report.pdf", recon.run_report_pdf, name="reconciliation-run-pdf"),
    path("reconciliation/cases/", recon.case_list, name="reconciliation-cases"),
    path("reconciliation/cases/<int:case_id>/", recon.case_detail, name="reconciliation-case"),
    path("reconciliation/cases/<int:case_id>/investigate/", recon.case_action, {"action": "investigate"},
         name="reconciliation-case-investigate"),
    path("reconciliation/cases/<int:case_id>/resolve/", recon.case_action, {"action": "resolve"},
         name="reconciliation-case-resolve"),
    path("reconciliation/cases/<int:case_id>/corrections/", recon.case_action, {"action": "propose"},
         name="reconciliation-correction-propose"),
    path("reconciliation/cases/<int:case_id>/corrections/<int:correction_id>/approve/", recon.correction_decide,
         {"decision": "approve"}, name="reconciliation-correction-approve"),
    path("reconciliation/cases/<int:case_id>/corrections/<int:correction_id>/reject/", recon.correction_decide,
         {"decision": "reject"}, name="reconciliation-correction-reject"),
]
