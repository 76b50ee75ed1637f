from rest_framework.routers import SimpleRouter

from adapters.budget import api

router = SimpleRouter()
router.register("budget/messages", api.BudgetMessageViewSet, basename="api-budget-message")

urlpatterns = router.urls
