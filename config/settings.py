"""Settings, all from the environment. Nothing secret lives in this file.

Development defaults (no environment at all): SQLite in var/, Celery eager, sandbox operator on
127.0.0.1:8701, a development signing key created under var/keys on first use.
"""
import os
import re
import secrets
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _development_secret_key() -> str:
    # Production must set DJANGO_SECRET_KEY; development keeps a random one out of the repo.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


def required_in_production(name: str, development_default):
    """Production (DJANGO_DEBUG=0) must set this variable; development gets a harmless default."""
    value = os.environ.get(name)
    if value:
        return value
    if not DEBUG:
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_DEBUG=0")
    return development_default() if callable(development_default) else development_default


DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = required_in_production("DJANGO_SECRET_KEY", _development_secret_key)
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
# A signed-in session ends after DJANGO_SESSION_IDLE_MINUTES without a request (30 by default) and when the
# browser closes: these pages move public money and salaries, and a desk left signed in is an open till. Every
# request moves the end on (a page polling a run's progress keeps its session while it is watched).
SESSION_COOKIE_AGE = env_int("DJANGO_SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
X_FRAME_OPTIONS = "DENY"
# Behind a TLS-terminating proxy in production: turn these on there (DJANGO_SSL_REDIRECT=1, DJANGO_HSTS_SECONDS=...).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0)
if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "treasury",
    "treasury.access",
    "treasury.trace",
    "treasury.receipts",
    "adapters.ecny",
    "adapters.budget",
    "adapters.tips",
    "payroll",
    "fiscal_disbursement",
    "tax",
    "tax.reconciliation",
    "social_security",
    "social_security.flexible",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "treasury.access.context_processors.navigation",
            ],
        },
    }
]

# Database: DATABASE_URL (postgres://user@host:5432/name) in production; SQLite in WAL mode otherwise.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE: a writer takes the lock at BEGIN, so two writers never deadlock on upgrade.
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # The planner's price of reading a page at random. PostgreSQL's default, 4, is a spinning disk's; for
    # SSD or a working set in memory 1.1 is the usual figure. At 4 the bulk paths' updates of a few
    # thousand rows by id (a chunk's payroll lines, its transfers) were planned as a hash join over the
    # whole table (payroll line update: 111 -> 56 ms a 5,000-line chunk; README, "Performance").
    # Empty: not sent (a pooler such as PgBouncer refuses startup options; set it on the database instead).
    random_page_cost = os.environ.get("DATABASE_RANDOM_PAGE_COST", "1.1").strip()
    if random_page_cost:
        if not re.fullmatch(r"\d+(\.\d+)?", random_page_cost):  # passed to the server as text: digits only
            raise ImproperlyConfigured(
                f"DATABASE_RANDOM_PAGE_COST must be a number such as 1.1, not {random_page_cost!r}")
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c random_page_cost={random_page_cost}".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
# The sign-in lock (treasury/access/login_lock.py): this many failed sign-ins for a username within this many
# minutes lock it for the rest of those minutes, on the sign-in page and the API's token call.
AUTHENTICATION_BACKENDS = ["treasury.access.login_lock.LockingModelBackend"]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
LOGIN_LOCK_MINUTES = env_int("LOGIN_LOCK_MINUTES", 15)
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# zh-hans first, English second.
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"  # display; datetimes are stored in UTC
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = "media/"

# The cache holds the public receipt verification's per-address counts (treasury/receipts/api.py): with
# CACHE_URL (redis://host:6379/1) every process of the service counts together; without it each process counts
# on its own (development, tests).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["CACHE_URL"]}
          if os.environ.get("CACHE_URL") else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

REST_FRAMEWORK = {
    # Token first: a request without credentials gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "treasury.access.api_errors.api_exception_handler",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "treasury.api_limits.ApiPagination",  # ?limit= capped (api_limits)
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "e-CNY treasury and public-payment service API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two models have a field named "source" with different choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "DuesCallSourceEnum": "payroll.models.DuesCall.Source",
        "DeclarationSourceEnum": "social_security.models.DeclarationSource",
        "LedgerAccountKindEnum": "treasury.models.LedgerAccount.Kind",
        "LedgerEntryKindEnum": "treasury.models.LedgerEntry.Kind",
    },
}

# Celery: without a broker URL everything runs eagerly in-process.
CELERY_TASK_ALWAYS_EAGER = not os.environ.get("CELERY_BROKER_URL")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ROUTES = {
    "treasury.*": {"queue": "treasury"},
    "payroll.*": {"queue": "payroll"},
    "fiscal_disbursement.*": {"queue": "fiscal"},
    "tax.*": {"queue": "tax"},
    "social_security.*": {"queue": "social"},
}
CELERY_TASK_DEFAULT_QUEUE = "treasury"
# Celery's Django fixup closes the database connections before and after every task unless this is set
# (Celery 5.5 and later): every task paid for a new PostgreSQL backend, whose catalog caches start cold.
# A worker process keeps its connection for this many tasks; config/celery.py still closes it after a task
# when it is broken or older than DATABASE_CONN_MAX_AGE, as Django does after a request.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000)
CELERY_BEAT_SCHEDULE = {
    "recover-unconfirmed-transfers": {
        "task": "treasury.recover_unconfirmed_transfers",
        "schedule": 60.0,
    },
    "submit-stranded-pending-transfers": {
        "task": "treasury.submit_stranded_pending_transfers",
        "schedule": 120.0,
    },
    "trace-checkpoint": {"task": "treasury.trace_checkpoint", "schedule": crontab(minute="*/10")},
    "access-forget-old-login-failures": {"task": "access.forget_old_login_failures", "schedule": crontab(minute=17)},
    "payroll-finish-paying-batches": {"task": "payroll.finish_paying_batches", "schedule": 30.0},
    "payroll-remove-unreferenced-uploads": {"task": "payroll.remove_unreferenced_uploads",
                                            "schedule": crontab(hour=3, minute=40)},
    "fiscal-remove-unreferenced-uploads": {"task": "fiscal_disbursement.remove_unreferenced_uploads",
                                           "schedule": crontab(hour=3, minute=45)},
    "fiscal-finish-paying-requests": {"task": "fiscal_disbursement.finish_paying_requests", "schedule": 30.0},
    "fiscal-resend-vouchers-and-reports": {"task": "fiscal_disbursement.resend_pending", "schedule": 60.0},
    "fiscal-sync-quotas": {"task": "fiscal_disbursement.sync_quotas", "schedule": crontab(minute=5)},
    "fiscal-reconcile": {"task": "fiscal_disbursement.reconcile_reported_requests",
                         "schedule": crontab(hour=18, minute=30)},
    "tax-resolve-unknown-deductions": {"task": "tax.resolve_unknown_deductions", "schedule": 60.0},
    "tax-finish-packages-and-send-results": {"task": "tax.finish_packages", "schedule": 30.0},
    "tax-finish-refund-orders-and-send-results": {"task": "tax.finish_refund_orders", "schedule": 30.0},
    # Yesterday's three-way reconciliation (对账), after the tax system's check detail (3111) has come in.
    "tax-reconcile-yesterday": {"task": "tax_reconciliation.reconcile_yesterday", "schedule": crontab(hour=6, minute=0)},
    # 2111s the tax system did not take (unreachable, a fault) sent again until it acknowledges them.
    "tax-resend-check-results": {"task": "tax_reconciliation.resend_check_results", "schedule": crontab(minute="*/10")},
    # Treasury entries of settled correcting transfers of reconciliation cases, when the transfer core's
    # announcement was lost (it books them at once otherwise).
    "tax-book-correction-entries": {"task": "tax_reconciliation.book_correction_entries", "schedule": 60.0},
    # Yesterday's treasury entry detail (3139) to the tax system; a package already acknowledged is not resent.
    "tax-send-entry-details": {"task": "tax_reconciliation.send_entry_details", "schedule": crontab(hour=5, minute=30)},
    # Flexible-employment premiums: payments whose transfer has an outcome now are finished; the months owed
    # are made every night (a new month appears on its first day).
    "social-flexible-finish-payments": {"task": "social_security.flexible_finish_payments", "schedule": 30.0},
    "social-flexible-make-periods": {"task": "social_security.flexible_make_periods",
                                     "schedule": crontab(hour=0, minute=10)},
    # Social insurance: paying declarations finished from their transfers; declarations and payment notices
    # the tax system has not answered yet sent again.
    "social-finish-paying-declarations": {"task": "social_security.finish_paying_declarations", "schedule": 30.0},
    "social-resend-pending": {"task": "social_security.resend_pending", "schedule": 60.0},
    "social-reconcile-yesterday": {"task": "social_security.reconcile_yesterday",
                                   "schedule": crontab(hour=6, minute=30)},
}

# Fiscal disbursement: requests above this total need a second approver (neither the preparer).
DISBURSEMENT_SECOND_APPROVAL_FEN = env_int("DISBURSEMENT_SECOND_APPROVAL_FEN", 1_000_000_00)

# Tax (三方协议, TIPS). An agreement the tax system verified (9114) becomes active at once; staff suspend it.
TAX_AGREEMENT_ACTIVATE_ON_VERIFY = env_bool("TAX_AGREEMENT_ACTIVATE_ON_VERIFY", True)
TAX_BATCH_MAX_ITEMS = env_int("TAX_BATCH_MAX_ITEMS", 1000)  # items a 3102 package may carry
TAX_BATCH_CHUNK_SIZE = env_int("TAX_BATCH_CHUNK_SIZE", 1000)  # items per create_transfers call: a whole package
# Our bank/operator code in TIPS messages (PayBkCode of 2102), 12 digits.
TAX_PAY_BANK_CODE = os.environ.get("TAX_PAY_BANK_CODE", "001000000000")
# Revenue sharing for the entry report (central %, local %) by tax type name; other tax types go wholly to
# the budget level of the deduction (central when it is 1, local otherwise).
TAX_REVENUE_SHARING = {
    "增值税": (50, 50),
    "企业所得税": (60, 40),
    "个人所得税": (60, 40),
}

# Transfer core tuning.
TRANSFER_CHUNK_SIZE = env_int("TRANSFER_CHUNK_SIZE", 1000)  # one operator batch call / one Celery task
TRANSFER_RECOVERY_AFTER_SECONDS = env_int("TRANSFER_RECOVERY_AFTER_SECONDS", 120)
# Issue a signed PDF receipt for every settled transfer (a Celery task per settled chunk).
RECEIPTS_AUTO_ISSUE = env_bool("RECEIPTS_AUTO_ISSUE", True)

# The e-CNY operator (the sandbox in development and tests).
ECNY_OPERATOR_URL = os.environ.get("ECNY_OPERATOR_URL", "http://127.0.0.1:8701")
ECNY_OPERATOR_API_KEY = required_in_production("ECNY_OPERATOR_API_KEY", "sandbox-development-key")
ECNY_OPERATOR_TIMEOUT_SECONDS = float(os.environ.get("ECNY_OPERATOR_TIMEOUT_SECONDS", "10"))  # float ok: seconds
ECNY_OPERATOR_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("ECNY_OPERATOR_CONNECT_TIMEOUT_SECONDS", "3"))  # float ok: seconds

# Largest multipart request (uploaded files and fields), refused from its Content-Length before it is read
# (treasury/uploads.py): above the largest spreadsheet a form takes (200 MB).
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 256 * 1024 * 1024)
FILE_UPLOAD_HANDLERS = [
    "treasury.uploads.UploadSizeLimit",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# The budget-management integration system (预算管理一体化系统), over SOAP (the sandbox in development and tests).
BUDGET_SYSTEM_URL = os.environ.get("BUDGET_SYSTEM_URL", "http://127.0.0.1:8702/")
BUDGET_SYSTEM_API_KEY = required_in_production("BUDGET_SYSTEM_API_KEY", "budget-sandbox-development-key")
BUDGET_SYSTEM_TIMEOUT_SECONDS = float(os.environ.get("BUDGET_SYSTEM_TIMEOUT_SECONDS", "30"))  # float ok: seconds
BUDGET_SYSTEM_RETRIES = env_int("BUDGET_SYSTEM_RETRIES", 2)  # further attempts after a timeout, 5xx or unreadable reply
# Largest SOAP message read or accepted (a 100,000-detail voucher is about 30 MB).
BUDGET_MESSAGE_MAX_BYTES = env_int("BUDGET_MESSAGE_MAX_BYTES", 64 * 1024 * 1024)

# The tax system (TIPS-style messages over SOAP; the sandbox in development and tests). adapters/tips/README.md.
TIPS_SYSTEM_URL = os.environ.get("TIPS_SYSTEM_URL", "http://127.0.0.1:8703/")
TIPS_NODE_CODE = os.environ.get("TIPS_NODE_CODE", "100000000001")  # this service's node (SRC of what it sends)
TIPS_PEER_NODE_CODE = os.environ.get("TIPS_PEER_NODE_CODE", "100000000002")  # the tax system's node
TIPS_TIMEOUT_SECONDS = float(os.environ.get("TIPS_TIMEOUT_SECONDS", "30"))  # float ok: seconds
TIPS_RETRIES = env_int("TIPS_RETRIES", 2)  # further attempts after a timeout, 5xx or unreadable reply (same MsgID)
TIPS_MESSAGE_MAX_BYTES = env_int("TIPS_MESSAGE_MAX_BYTES", 8 * 1024 * 1024)  # a 1,000-item package is ~1 MB
# The tax system's Ed25519 public key (PEM); development: written by `run_tips_sandbox`.
TIPS_PEER_PUBLIC_KEY_FILE = Path(os.environ.get("TIPS_PEER_PUBLIC_KEY_FILE",
                                                VAR_DIR / "keys" / "tips-sandbox-ed25519.pub.pem"))
TIPS_MESSAGE_HANDLER = os.environ.get("TIPS_MESSAGE_HANDLER", "tax.handlers.TaxHandler")

# Personal wallet limits by class, in fen; None = no limit. Operator-supplied configuration,
# never constants in code (../DOMAIN: class 3 figures are not confirmed publicly).
WALLET_CLASS_LIMITS = {
    1: {"balance_cap_fen": None, "single_fen": None, "daily_fen": None},
    2: {"balance_cap_fen": 500_000_00, "single_fen": 50_000_00, "daily_fen": 100_000_00},
    3: {"balance_cap_fen": 20_000_00, "single_fen": 5_000_00, "daily_fen": 10_000_00},
    4: {"balance_cap_fen": 10_000_00, "single_fen": 2_000_00, "daily_fen": 5_000_00},
}
# What happens to incoming money beyond a payee's balance cap: "refuse" (sandbox default).
WALLET_BALANCE_CAP_POLICY = os.environ.get("WALLET_BALANCE_CAP_POLICY", "refuse")

# Real early pilot credit codes that fail the GB 32100 checksum but belong to real employers.
USCC_CHECKSUM_WHITELIST = {c for c in os.environ.get("USCC_CHECKSUM_WHITELIST", "91350100M0001TGQXM").split(",") if c}

# The service's signing key (trace checkpoints, receipts). Production points this at a key
# file provisioned out of band (or mounts it); development creates one on first use.
SERVICE_SIGNING_KEY_FILE = Path(os.environ.get("SERVICE_SIGNING_KEY_FILE", VAR_DIR / "keys" / "service-ed25519.pem"))
SERVICE_SIGNING_KEY_CREATE = env_bool("SERVICE_SIGNING_KEY_CREATE", DEBUG)
# Base URL printed in receipt QR codes (the public verification page).
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_personal_data": {"()": "treasury.logmask.MaskPersonalDataFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["mask_personal_data"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
