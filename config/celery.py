"""The Celery app. Without CELERY_BROKER_URL, tasks run eagerly in-process (development, `make demo`)."""
import gc
import os

from celery import Celery, signals
from django import db

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("ecny_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def close_old_connections(sender=None, **kwargs):
    """The fixup keeps a worker's connections between tasks (CELERY_DB_REUSE_MAX); close those that are
    broken or older than CONN_MAX_AGE, as Django does around a request. Not for eager tasks: they run inside
    the caller's request or transaction."""
    if not getattr(sender.request, "is_eager", False):
        db.close_old_connections()


@signals.worker_init.connect
def load_soap_clients(**kwargs):
    """zeep and the budget system's WSDL loaded once in the worker's main process, before it forks its pool:
    otherwise each pool process pays for them in its first voucher, report or tax message (a 50,000-line
    disbursement's voucher, fresh workers: 1.26 -> 1.15 s)."""
    from adapters.budget.client import wsdl_client
    from adapters.tips import client  # noqa: F401  (imports zeep's transport)

    wsdl_client()


@signals.worker_process_init.connect
def freeze_startup_objects(**kwargs):
    """Each pool process moves what it has loaded (Django, Celery, zeep, the apps' modules) out of the
    cyclic garbage collector's sight, as they live as long as the process. Otherwise each full collection
    walks them all again while bulk tasks allocate rows by the thousand: 1.4 s of a worker's 7.6 s
    paying a 100,000-line payroll went to the collector, 0.2 s after freezing."""
    gc.freeze()
