from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter()
router.register("social/flexible/enrolments", api.EnrolmentViewSet, basename="api-social-flexible-enrolment")
router.register("social/flexible/payments", api.PaymentViewSet, basename="api-social-flexible-payment")

urlpatterns = router.urls + [
    path("social/flexible/levels/", api.BaseLevelsView.as_view(), name="api-social-flexible-levels"),
]
