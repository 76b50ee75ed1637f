from django.urls import path

from . import views

app_name = "social_flexible"

urlpatterns = [
    path("", views.mine, name="mine"),
    path("enrol/", views.enrol, name="enrol"),
    path("change/", views.change, name="change"),
    path("pay/", views.pay, name="pay"),
    path("payments/", views.payments, name="payments"),
    path("statement.pdf", views.my_statement, name="statement"),
    path("enrolments/", views.staff_list, name="staff-list"),
    path("enrolments/<int:enrolment_id>/", views.staff_detail, name="staff-detail"),
    path("enrolments/<int:enrolment_id>/statement.pdf", views.staff_statement, name="staff-statement"),
]
