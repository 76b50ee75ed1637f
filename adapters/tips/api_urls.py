from rest_framework.routers import SimpleRouter

from adapters.tips import api

router = SimpleRouter()
router.register("tips/messages", api.TipsMessageViewSet, basename="api-tips-message")

urlpatterns = router.urls
