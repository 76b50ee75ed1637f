import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()
# What is loaded by now lives as long as the process: out of the cyclic garbage collector's sight, so that
# its full collections do not walk it again and again (see config/celery.py, where it was measured).
gc.freeze()
