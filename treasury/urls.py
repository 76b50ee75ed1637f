from django.urls import path

from treasury import views

urlpatterns = [
    path("", views.transfer_list, name="transfer-list"),
    path("<int:transfer_id>/", views.transfer_detail, name="transfer-detail"),
]
