from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from treasury import views as treasury_views
from treasury.access.api_errors import api_not_found

api_v1 = [
    path("", include("treasury.api_urls")),
    path("", include("treasury.trace.api_urls")),
    path("", include("treasury.receipts.api_urls")),
    path("", include("treasury.access.api_urls")),
    path("", include("payroll.api_urls")),
    path("", include("adapters.budget.api_urls")),
    path("", include("adapters.tips.api_urls")),
    path("", include("fiscal_disbursement.api_urls")),
    path("", include("tax.api_urls")),
    path("", include("social_security.api_urls")),
    path("", include("social_security.flexible.api_urls")),
    # Last: what no route above takes answers the API's JSON 404 (api_errors.api_not_found).
    re_path(r"^[\s\S]*/$", api_not_found),  # [\s\S], not ".": an address with a newline in it too
]

urlpatterns = [
    # Browsers ask for /favicon.ico on pages that name no icon (the admin site's, a PDF's).
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True)),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    path("transfers/", include("treasury.urls")),
    path("ledger/", treasury_views.ledger_account_list, name="ledger-account-list"),
    path("ledger/<int:account_id>/", treasury_views.ledger_account_detail, name="ledger-account-detail"),
    path("ledger/<int:account_id>/entries.csv", treasury_views.ledger_account_csv, name="ledger-account-csv"),
    path("trace/", include("treasury.trace.urls")),
    path("receipts/", include("treasury.receipts.urls")),
    path("payroll/", include("payroll.urls")),
    path("budget/", include("adapters.budget.urls")),
    path("tips/", include("adapters.tips.urls")),
    path("fiscal/", include("fiscal_disbursement.urls")),
    path("tax/", include("tax.urls")),
    path("social/", include("social_security.urls")),
    path("social/flexible/", include("social_security.flexible.urls")),
    path("", include("treasury.access.urls")),
]
