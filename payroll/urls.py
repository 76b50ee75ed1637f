from django.urls import path

from . import union_views, views

app_name = "payroll"
urlpatterns = [
    path("", views.batch_list, name="batch-list"),
    path("upload/", views.upload, name="upload"),
    path("template.<str:fmt>", views.template_download, name="template"),
    path("approvals/", views.approval_queue, name="approval-queue"),
    path("unions/", views.union_list, name="union-list"),
    path("unions/<int:union_id>/", views.union_detail, name="union-detail"),
    path("unions/<int:union_id>/rules/", union_views.union_rules_page, name="union-rules"),
    path("unions/<int:union_id>/dues-calls/", views.union_dues_call, name="union-dues-call"),
    path("unions/<int:union_id>/members/", views.union_members, name="union-members"),
    path("unions/<int:union_id>/members/add/", views.union_member_add, name="union-member-add"),
    path("unions/<int:union_id>/members/import/", views.union_members_import, name="union-members-import"),
    path("unions/<int:union_id>/members/template.csv", views.union_members_template, name="union-members-template"),
    path("unions/<int:union_id>/members/<int:member_id>/", views.union_member_edit, name="union-member-edit"),
    path("unions/<int:union_id>/members/<int:member_id>/active/", views.union_member_active,
         name="union-member-active"),
    path("<int:batch_id>/", views.batch_detail, name="batch-detail"),
    path("<int:batch_id>/progress/", views.batch_progress, name="batch-progress"),
    path("<int:batch_id>/errors.<str:fmt>", views.error_report, name="error-report"),
    path("<int:batch_id>/lines/<int:line_no>/payslip.pdf", views.payslip, name="payslip"),
    path("<int:batch_id>/payslips/", views.payslips_request, name="payslips-request"),
    path("<int:batch_id>/payslips/<int:archive_id>/", views.payslips_progress, name="payslips-progress"),
    path("<int:batch_id>/payslips/<int:archive_id>/download/", views.payslips_download, name="payslips-download"),
    path("<int:batch_id>/lines/", views.batch_lines_action, name="batch-lines"),
    path("<int:batch_id>/summary-receipt/", views.summary_receipt, name="summary-receipt"),
    path("<int:batch_id>/<str:action>/", views.batch_action, name="batch-action"),
]
