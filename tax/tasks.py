"""Celery tasks of the tax domain (queue "tax"): a few lines each, calling a service. All idempotent."""
from celery import shared_task
from django.utils import timezone

from tax import services


@shared_task(name="tax.process_package", acks_late=True, reject_on_worker_lost=True)
def process_package_task(*, package_id: int) -> dict:
    return services.process_package(package_id=package_id, now=timezone.now())


@shared_task(name="tax.send_package_result", acks_late=True, reject_on_worker_lost=True)
def send_package_result_task(*, package_id: int) -> bool:
    return services.send_package_result(package_id=package_id, now=timezone.now()).result_acknowledged


@shared_task(name="tax.finish_packages", acks_late=True, reject_on_worker_lost=True)
def finish_packages_task() -> dict:
    return services.finish_packages(now=timezone.now())


@shared_task(name="tax.resolve_unknown_deductions", acks_late=True, reject_on_worker_lost=True)
def resolve_unknown_deductions_task() -> dict:
    return services.resolve_unknown_deductions(now=timezone.now())


@shared_task(name="tax.finish_refund_orders", acks_late=True, reject_on_worker_lost=True)
def finish_refund_orders_task() -> dict:
    return dict(services.finish_refund_orders(now=timezone.now()))
