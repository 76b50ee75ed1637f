from django.urls import path

from adapters.budget import views

app_name = "budget"
urlpatterns = [
    path("messages/", views.message_list, name="messages"),
    path("messages/<int:message_id>/", views.message_detail, name="message"),
    path("messages/<int:message_id>/<str:part>.xml", views.message_body, name="message-body"),
]
