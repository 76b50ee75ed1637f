from rest_framework.routers import SimpleRouter

from social_security import api, reconciliation_api

router = SimpleRouter()
router.register("social/declarations", api.DeclarationViewSet, basename="api-social-declaration")
router.register("social/reconciliation/runs", reconciliation_api.SocialReconciliationRunViewSet,
                basename="api-social-reconciliation-run")
router.register("social/reconciliation/cases", reconciliation_api.SocialDiscrepancyCaseViewSet,
                basename="api-social-reconciliation-case")

urlpatterns = router.urls
