from django.urls import path

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
]
