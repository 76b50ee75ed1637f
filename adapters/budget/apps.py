from django.apps import AppConfig


class BudgetConfig(AppConfig):
    name = "adapters.budget"
    label = "budget"
    verbose_name = "预算管理一体化系统接口 (budget-management system adapter)"
