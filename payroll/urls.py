app_name = "payroll"
urlpatterns = []
