from django.urls import path

from adapters.tips import views

app_name = "tips"
urlpatterns = [
    path("soap/", views.soap_endpoint, name="soap"),
    path("soap/<str:name>.xsd", views.soap_schema, name="soap-schema"),
    path("messages/", views.message_list, name="messages"),
    path("messages/<int:message_id>/", views.message_detail, name="message"),
    path("messages/<int:message_id>/body.xml", views.message_body, name="message-body"),
]
