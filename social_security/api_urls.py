from rest_framework.routers import SimpleRouter

from social_security import api

router = SimpleRouter()
router.register("social/declarations", api.DeclarationViewSet, basename="api-social-declaration")

urlpatterns = router.urls
