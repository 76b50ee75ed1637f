from django.urls import path

from . import views

app_name = "fiscal"
urlpatterns = [
    path("", views.request_list, name="request_list"),
    path("quotas/", views.quota_list, name="quota_list"),
    path("quotas/sync/", views.quota_sync, name="quota_sync"),
    path("new/", views.request_create, name="request_create"),
    path("template.<str:fmt>", views.template_download, name="template"),
    path("approvals/", views.approval_queue, name="approval_queue"),
    path("returns/", views.returns, name="returns"),
    path("daily/", views.daily_report, name="daily_report"),
    path("daily/report.pdf", views.daily_report_pdf, name="daily_report_pdf"),
    path("<int:request_id>/", views.request_detail, name="request_detail"),
    path("<int:request_id>/progress/", views.request_progress, name="request_progress"),
    path("<int:request_id>/payees/", views.request_payees, name="request_payees"),
    path("<int:request_id>/attachments/", views.request_attachment, name="request_attachment"),
    path("<int:request_id>/attachments/<int:attachment_id>/", views.attachment_download, name="attachment"),
    path("<int:request_id>/errors.<str:fmt>", views.error_report, name="error_report"),
    path("<int:request_id>/voucher.pdf", views.voucher_pdf, name="voucher_pdf"),
    path("<int:request_id>/lines/", views.request_lines_action, name="request_lines"),
    path("<int:request_id>/<str:action>/", views.request_action, name="request_action"),
]
