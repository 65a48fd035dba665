"""Imaradesk settings, read from the environment (see docs/operations.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from dotenv import load_dotenv

from apps.core.env import env_bool, env_int, env_list, env_secret, env_str

# Lets `ModelAdmin[Model]` and friends be subscripted at run time, as the type checker wants.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# `make run` / `make test` write the URLs of the services they provide here, so a
# plain `manage.py` or `pytest` afterwards talks to the same database and Redis.
# Real environment variables always win.
load_dotenv(BASE_DIR / ".env", override=False)
load_dotenv(BASE_DIR / "var" / "stack.env", override=False)

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", debug=DEBUG, dev_default="dev-insecure-imaradesk-secret-key-0123456789")

# Fernet keys for secrets stored in the database (access tokens, app secrets, API keys),
# newest first. Generate one with:
#   python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", [])
if not FIELD_ENCRYPTION_KEYS:
    FIELD_ENCRYPTION_KEYS = [
        env_secret("FIELD_ENCRYPTION_KEYS", debug=DEBUG, dev_default="ZGV2LW9ubHktaW1hcmFkZXNrLWVuY3J5cHRpb24ta2U=")
    ]

PUBLIC_DOMAIN = env_str("PUBLIC_DOMAIN", "localhost")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [PUBLIC_DOMAIN, f".{PUBLIC_DOMAIN}", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# --- Applications -------------------------------------------------------------------------
# Public schema: the platform (tenants, routing tables, platform admins, beat schedules).
SHARED_APPS = [
    "django_tenants",
    "apps.core",
    "apps.tenants",
    "apps.accounts",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # In both lists: the user model is shared, and deleting a user cascades to tokens.
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
]
# Tenant schemas: each business has its own users, roles, sessions and domain data.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "rest_framework.authtoken",
    "apps.accounts",
    "apps.whatsapp",
    "apps.contacts",
    "apps.conversations",
    "apps.ai",
    "apps.knowledge",
    "apps.tickets",
    "apps.flows",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Organization"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# New tenants are cloned from a template schema instead of running every migration:
# see apps/tenants/schemas.py, docs/architecture.md and benchmarks/tenant_create.py.

MIDDLEWARE = [
    "apps.core.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files are the same for every host: serve them before the tenant lookup.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django_tenants.middleware.main.TenantMainMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "imaradesk.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "imaradesk.urls_public"
WSGI_APPLICATION = "imaradesk.wsgi.application"
ASGI_APPLICATION = "imaradesk.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:54329/imaradesk")
_db: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL))
_db["ENGINE"] = "django_tenants.postgresql_backend"
# A pool, not CONN_MAX_AGE: under ASGI every request runs on its own thread and
# persistent per-thread connections exhaust PostgreSQL (DESIGN.md, "Serving").
_db["CONN_MAX_AGE"] = 0
_pool_max = env_int("DB_POOL_MAX_SIZE", 10)
_db["OPTIONS"] = {"pool": {"min_size": 1, "max_size": _pool_max, "timeout": 10}} if _pool_max > 0 else {}
DATABASES = {"default": _db}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# django-tenants sends `SET search_path` before every query unless told to send it only when
# the schema changes. Profiled (benchmarks/inbox_fanout.py, py-spy): those SETs were about half
# of the webhook task's time. Its wrapper forgets the setting on rollback, savepoint rollback,
# close (back to the pool) and every set_schema/set_tenant, so skipping repeats is safe.
TENANT_LIMIT_SET_CALLS = env_bool("TENANT_LIMIT_SET_CALLS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, channel layer, Celery --------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6390/0")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every cache key carries the tenant's schema: no tenant can read another's entries.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": "imaradesk",
    }
}

# redis-py 8 reads with a 5 s socket timeout by default, the same as channels_redis'
# blocking BZPOPMIN: an idle socket's receive loop would die after 5 s. Read longer.
CHANNEL_LAYER_SOCKET_TIMEOUT = 30
# Redis pub/sub: a group_send is one PUBLISH, and each server process receives it once and
# hands it to its local sockets. The list-based `channels_redis.core.RedisChannelLayer` writes
# one copy per socket, and its receive loop wakes every waiting socket for each copy: with 200
# agents on one process that churn was most of the fan-out time (benchmarks/inbox_fanout.py).
# Pub/sub delivers at most once; a socket that misses an event catches up from the tenant's
# Redis stream (see apps.core.realtime).
CHANNEL_LAYER_BACKEND = env_str("CHANNEL_LAYER_BACKEND", "channels_redis.pubsub.RedisPubSubChannelLayer")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": CHANNEL_LAYER_BACKEND,
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT}],
            "prefix": "imaradesk:asgi",
        },
    }
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_DEFAULT_QUEUE", "celery")
# Slow AI work (analysis, the bot's answers, indexing, tickets' written text) has a queue of its
# own, served by its own worker, so that webhooks, sends and live events never wait behind a model.
CELERY_AI_QUEUE = env_str("CELERY_AI_QUEUE", "ai")
CELERY_TASK_ROUTES = {
    "apps.conversations.tasks.message_analyse_task": {"queue": CELERY_AI_QUEUE},
    "apps.conversations.tasks.message_automation_task": {"queue": CELERY_AI_QUEUE},
    "apps.flows.tasks.flow_run_resume_task": {"queue": CELERY_AI_QUEUE},
    "apps.knowledge.tasks.document_index_task": {"queue": CELERY_AI_QUEUE},
    "apps.knowledge.tasks.article_index_task": {"queue": CELERY_AI_QUEUE},
    "apps.tickets.tasks.ticket_text_write_task": {"queue": CELERY_AI_QUEUE},
}
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", REDIS_URL)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "accounts-presence-expire": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 60.0,
        "args": ["apps.accounts.tasks.agent_presence_expire_task"],
    },
    # Nothing is lost: events and sends whose task vanished are enqueued again.
    "whatsapp-webhook-events-sweep": {"task": "apps.whatsapp.tasks.webhook_events_sweep_task", "schedule": 60.0},
    "whatsapp-outbox-sweep": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 60.0,
        "args": ["apps.whatsapp.tasks.outbox_sweep_task"],
    },
    "whatsapp-media-download-sweep": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 60.0,
        "args": ["apps.whatsapp.tasks.media_download_sweep_task"],
    },
    # Templates are edited and approved in WhatsApp Manager: keep each number's copy fresh.
    "whatsapp-message-templates-refresh": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 6 * 3600.0,
        "args": ["apps.whatsapp.tasks.message_templates_refresh_task"],
    },
    "conversations-assignment-drain": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 30.0,
        "args": ["apps.conversations.tasks.assignment_queue_drain_task"],
    },
    "conversations-unsnooze": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 60.0,
        "args": ["apps.conversations.tasks.conversations_unsnooze_due_task"],
    },
    "conversations-analysis-sweep": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 120.0,
        "args": ["apps.conversations.tasks.message_analysis_sweep_task"],
    },
    "ai-cache-prune": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 24 * 3600.0,
        "args": ["apps.ai.tasks.ai_cache_prune_task"],
    },
    # A Delay whose countdown task was lost still ends (at most a minute late).
    "flows-resume-due-sweep": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 60.0,
        "args": ["apps.flows.tasks.flow_runs_resume_due_sweep_task"],
    },
    "knowledge-index-sweep": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 300.0,
        "args": ["apps.knowledge.tasks.knowledge_index_sweep_task"],
    },
    "tickets-sla-sweep": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 60.0,
        "args": ["apps.tickets.tasks.tickets_sla_sweep_task"],
    },
    # A hand-off whose ticket failed or was lost still gets one (within about a minute).
    "tickets-handoff-sweep": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 60.0,
        "args": ["apps.tickets.tasks.tickets_handoff_sweep_task"],
    },
    "tickets-risk-refresh": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 300.0,
        "args": ["apps.tickets.tasks.tickets_risk_refresh_task"],
    },
    # Retention: what only served to process or trace is deleted after a while.
    "whatsapp-webhook-events-prune": {"task": "apps.whatsapp.tasks.webhook_events_prune_task", "schedule": 24 * 3600.0},
    "flows-runs-prune": {
        "task": "apps.tenants.tasks.tenants_fan_out_task",
        "schedule": 24 * 3600.0,
        "args": ["apps.flows.tasks.flow_runs_prune_task"],
    },
}

# --- Auth ---------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"  # tenant hosts redirect / to the inbox, the platform host to its admin
LOGOUT_REDIRECT_URL = "login"
# Failed sign-ins (pages, back offices, token API) per client address and account, and per
# address alone, counted from the first failure for the window; past either limit no password
# is checked until the window ends.
SIGN_IN_MAX_FAILURES = env_int("SIGN_IN_MAX_FAILURES", 10)
SIGN_IN_MAX_FAILURES_PER_ADDRESS = env_int("SIGN_IN_MAX_FAILURES_PER_ADDRESS", 100)
SIGN_IN_FAILURE_WINDOW_SECONDS = env_int("SIGN_IN_FAILURE_WINDOW_SECONDS", 15 * 60)

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated call then gets 401 with WWW-Authenticate, not 403.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's defaults, with a JSON parser that refuses absurdly nested bodies with a 400.
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.json_input.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.core.api_errors.exception_handler",
    # Throttles key on REMOTE_ADDR, never on the X-Forwarded-For header a client can write:
    # uvicorn (--proxy-headers) already takes the address from it for trusted proxies only.
    "NUM_PROXIES": 0,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Imaradesk API",
    "DESCRIPTION": "Multi-tenant WhatsApp AI helpdesk. Every path is served on a tenant's own host.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.api_schema.error_responses",
    ],
    # Conversations and tickets both have a "priority" and a "status" with different choices.
    "ENUM_NAME_OVERRIDES": {
        "ConversationPriorityEnum": "apps.conversations.models.Conversation.Priority",
        "ConversationStatusEnum": "apps.conversations.models.Conversation.Status",
        "TicketPriorityEnum": "apps.tickets.models.Priority",
        "TicketStatusEnum": "apps.tickets.models.Ticket.Status",
        "ArticleStatusEnum": "apps.knowledge.models.Article.Status",
        "KnowledgeIndexStatusEnum": "apps.knowledge.models.IndexStatus",
    },
}

# --- I18N ---------------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français"), ("pt", "Português"), ("sw", "Kiswahili")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static and media ---------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS: list[Path | tuple[str, Path]] = [
    BASE_DIR / "static",
    # The flow builder's graph editor, installed from npm by `make` (package.json, `npm ci`):
    # served as /static/drawflow/..., never copied into the repository.
    ("drawflow", BASE_DIR / "node_modules" / "drawflow" / "dist"),
]
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
# Uploaded files (knowledge documents) go to S3 or an S3-compatible store when a bucket is
# configured, to MEDIA_ROOT otherwise. Keys come from the environment or the instance role.
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME", "")
_S3_OPTIONS = {
    "bucket_name": AWS_STORAGE_BUCKET_NAME,
    "endpoint_url": env_str("AWS_S3_ENDPOINT_URL", "") or None,
    "region_name": env_str("AWS_S3_REGION_NAME", "") or None,
    "default_acl": None,  # private objects; the app serves them through its own views
    "querystring_auth": True,
    "file_overwrite": False,
}
STORAGES = {
    "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _S3_OPTIONS}
    if AWS_STORAGE_BUCKET_NAME
    else {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production) ----------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = False
# /healthz is probed over plain HTTP by load balancers and orchestrators.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SILENCED_SYSTEM_CHECKS = ["security.W021"]  # HSTS preload is an operator's decision.

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"tenant": {"()": "apps.core.logging.TenantContextFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(tenant)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)-7s [%(tenant)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["tenant"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Task start/finish lines at INFO, unless LOG_LEVEL asks for less.
        "celery": {"level": LOG_LEVEL if LOG_LEVEL in ("WARNING", "ERROR", "CRITICAL") else "INFO"},
    },
}

# --- WhatsApp -----------------------------------------------------------------------------
# The platform's Meta app; a WhatsApp number may bring its own app secret and verify token.
WHATSAPP_APP_SECRET = env_secret("WHATSAPP_APP_SECRET", debug=DEBUG, dev_default="imaradesk-dev-app-secret")
WHATSAPP_VERIFY_TOKEN = env_secret("WHATSAPP_VERIFY_TOKEN", debug=DEBUG, dev_default="imaradesk-dev-verify-token")
WHATSAPP_GRAPH_URL = env_str("WHATSAPP_GRAPH_URL", "https://graph.facebook.com")
WHATSAPP_GRAPH_VERSION = env_str("WHATSAPP_GRAPH_VERSION", "v21.0")
WHATSAPP_GRAPH_TIMEOUT = float(env_str("WHATSAPP_GRAPH_TIMEOUT", "10"))
WHATSAPP_WEBHOOK_MAX_BYTES = env_int("WHATSAPP_WEBHOOK_MAX_BYTES", 1_000_000)
# Handled webhook events (their raw payloads) are deleted after this many days (at least 8:
# Meta redelivers for up to 7); pending and failed ones stay.
WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS = env_int("WHATSAPP_WEBHOOK_EVENT_RETENTION_DAYS", 30)
WHATSAPP_SEND_MAX_ATTEMPTS = env_int("WHATSAPP_SEND_MAX_ATTEMPTS", 8)
# Share of each number's rate kept for replies to live conversations when bulk sends run.
WHATSAPP_LIVE_RESERVE = float(env_str("WHATSAPP_LIVE_RESERVE", "0.2"))
# The batch sender: rows claimed per round (capped at a fifth of the number's rate), concurrent
# Graph requests per worker process, how long a claim is held before the sweeper may hand the
# rows to another worker (well above a batch's worst case: a few timeouts in a row), and how
# long one drain task runs before it hands over to a fresh task.
WHATSAPP_SEND_BATCH = env_int("WHATSAPP_SEND_BATCH", 100)
WHATSAPP_SEND_CONCURRENCY = env_int("WHATSAPP_SEND_CONCURRENCY", 16)
WHATSAPP_SEND_LEASE_SECONDS = env_int("WHATSAPP_SEND_LEASE_SECONDS", 120)
WHATSAPP_DRAIN_SECONDS = float(env_str("WHATSAPP_DRAIN_SECONDS", "20"))
# Where the customer simulator POSTs its signed webhooks; empty: hand them to the ingest in-process.
WHATSAPP_SIMULATOR_URL = env_str("WHATSAPP_SIMULATOR_URL", "")
# Downloads of a customer's file: tries before it is marked failed. Retries back off to
# 6 hours apart, so 20 tries span about two days (Meta keeps a media id for about 30).
WHATSAPP_MEDIA_DOWNLOAD_MAX_ATTEMPTS = env_int("WHATSAPP_MEDIA_DOWNLOAD_MAX_ATTEMPTS", 20)
WHATSAPP_MEDIA_MAX_BYTES = {
    "image": 5 * 1024 * 1024,
    "audio": 16 * 1024 * 1024,
    "video": 16 * 1024 * 1024,
    "document": 100 * 1024 * 1024,
    "sticker": 500 * 1024,
}

# --- AI (offline defaults; providers are configured per tenant) -----------------------------
# Languages the offline detector chooses from (lingua, plus rules/fallbacks for am, ha, pcm).
AI_DETECT_LANGUAGES = env_list(
    "AI_DETECT_LANGUAGES", ["en", "fr", "pt", "es", "it", "ar", "sw", "yo", "zu", "xh", "so", "af"]
)

# Hand-off rules applied to each analysed message while the bot owns the conversation.
HANDOFF_MIN_CONFIDENCE = float(env_str("HANDOFF_MIN_CONFIDENCE", "0.5"))
HANDOFF_SENTIMENT_BELOW = float(env_str("HANDOFF_SENTIMENT_BELOW", "-0.6"))

# --- Tickets and SLAs -------------------------------------------------------------------------
# SLA times closer than this get a precise countdown task; later ones are found by the sweep
# (below Redis' 1-hour visibility timeout, after which an unacked countdown task is redelivered).
SLA_ETA_HORIZON_SECONDS = env_int("SLA_ETA_HORIZON_SECONDS", 45 * 60)
# A hand-off whose ticket failed is retried after this many seconds, doubling each time;
# the Beat sweep opens what is still missing once a hand-off is older than the grace time.
TICKET_HANDOFF_RETRY_SECONDS = env_int("TICKET_HANDOFF_RETRY_SECONDS", 30)
TICKET_HANDOFF_SWEEP_GRACE_SECONDS = env_int("TICKET_HANDOFF_SWEEP_GRACE_SECONDS", 120)
# The approved template that asks for a rating outside the 24-hour window; its five
# quick-reply buttons carry the payloads csat:<survey>:1 … csat:<survey>:5.
CSAT_TEMPLATE_NAME = env_str("CSAT_TEMPLATE_NAME", "csat_request")
CSAT_ENABLED = env_bool("CSAT_ENABLED", True)
# A text the customer sends within this time after rating is kept as the rating's comment.
CSAT_COMMENT_WINDOW_SECONDS = env_int("CSAT_COMMENT_WINDOW_SECONDS", 3600)

# --- Product ------------------------------------------------------------------------------
HEALTHCHECK_TIMEOUT = float(env_str("HEALTHCHECK_TIMEOUT", "2.0"))
# A worker's answer to /healthz's ping is reused this long (per process): anyone may ask.
HEALTHCHECK_CELERY_REUSE_SECONDS = float(env_str("HEALTHCHECK_CELERY_REUSE_SECONDS", "10"))
AGENT_PRESENCE_TTL_SECONDS = env_int("AGENT_PRESENCE_TTL_SECONDS", 300)

# --- AI engine (per-tenant settings live in each tenant's back office) ---------------------
# Consecutive failed calls that open a provider's breaker, and how long it stays open.
AI_BREAKER_FAILURES = env_int("AI_BREAKER_FAILURES", 3)
AI_BREAKER_COOLDOWN_SECONDS = float(env_str("AI_BREAKER_COOLDOWN_SECONDS", "30"))
AI_RETRY_DELAY_SECONDS = float(env_str("AI_RETRY_DELAY_SECONDS", "0.25"))
AI_CACHE_REDIS_TTL_SECONDS = env_int("AI_CACHE_REDIS_TTL_SECONDS", 7 * 24 * 3600)
AI_CACHE_DB_DAYS = env_int("AI_CACHE_DB_DAYS", 90)
# Tenants may point a provider at their own endpoint; plain http only where explicitly allowed.
AI_ALLOW_HTTP_BASE_URLS = env_bool("AI_ALLOW_HTTP_BASE_URLS", DEBUG)

# --- Flows --------------------------------------------------------------------------------
# Tests only: lets the API Call node reach a server on 127.0.0.1 (everything else stays refused).
FLOWS_EGRESS_ALLOW_LOOPBACK = False
# Ended flow runs (finished, failed) and their step history are deleted after this many days.
FLOW_RUN_RETENTION_DAYS = env_int("FLOW_RUN_RETENTION_DAYS", 90)

# --- Knowledge base -----------------------------------------------------------------------
KNOWLEDGE_MAX_UPLOAD_BYTES = env_int("KNOWLEDGE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024)
# A DOCX/XLSX is a zip: refuse archives that would inflate past these (zip bombs).
KNOWLEDGE_ZIP_MAX_UNCOMPRESSED_BYTES = env_int("KNOWLEDGE_ZIP_MAX_UNCOMPRESSED_BYTES", 200 * 1024 * 1024)
KNOWLEDGE_ZIP_MAX_RATIO = env_int("KNOWLEDGE_ZIP_MAX_RATIO", 100)
KNOWLEDGE_ZIP_MAX_MEMBERS = env_int("KNOWLEDGE_ZIP_MAX_MEMBERS", 2000)
KNOWLEDGE_CHUNK_MAX_TOKENS = env_int("KNOWLEDGE_CHUNK_MAX_TOKENS", 180)
KNOWLEDGE_CHUNK_OVERLAP_TOKENS = env_int("KNOWLEDGE_CHUNK_OVERLAP_TOKENS", 30)
KNOWLEDGE_EMBED_BATCH = env_int("KNOWLEDGE_EMBED_BATCH", 32)
KNOWLEDGE_SEARCH_K = env_int("KNOWLEDGE_SEARCH_K", 5)
# Below this confidence the answerer says it does not know and hands off (0..1).
KNOWLEDGE_ANSWER_MIN_CONFIDENCE = float(env_str("KNOWLEDGE_ANSWER_MIN_CONFIDENCE", "0.5"))
# HNSW candidate list per search (benchmarks/retrieval.py, vectors with the geometry of real
# e5 ones, the half-precision index): recall@10 at 100k 0.973 at 64, 0.995 at 100, 1.000 at
# 200 (+1.8 ms); at 1M 0.998-0.999 from 64 up. Searches filtered by category or tags use the
# second: filtered to 5% of the rows, 0.948 at 100 and 0.958 at 200 (docs/architecture.md,
# "Scale").
KNOWLEDGE_HNSW_EF_SEARCH = env_int("KNOWLEDGE_HNSW_EF_SEARCH", 100)
KNOWLEDGE_HNSW_EF_SEARCH_FILTERED = env_int("KNOWLEDGE_HNSW_EF_SEARCH_FILTERED", 200)
# Full-text matches ranked per search tier (passages with 2+ of the question's terms, then 1).
KNOWLEDGE_FTS_RANK_LIMIT = env_int("KNOWLEDGE_FTS_RANK_LIMIT", 500)
# Unanswered questions at least this similar (e5 cosine, 0..1) to an open one join its group.
KNOWLEDGE_GAP_GROUP_SIMILARITY = float(env_str("KNOWLEDGE_GAP_GROUP_SIMILARITY", "0.9"))
KNOWLEDGE_QUERY_CACHE_SECONDS = env_int("KNOWLEDGE_QUERY_CACHE_SECONDS", 24 * 3600)
# Indexing that has not moved for this long is queued again by a periodic sweep.
KNOWLEDGE_INDEX_STUCK_SECONDS = env_int("KNOWLEDGE_INDEX_STUCK_SECONDS", 900)
