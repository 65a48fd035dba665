"""Settings for the test suite: the real services, on their own Redis database."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

os.environ.setdefault("DJANGO_DEBUG", "1")

from imaradesk.settings.base import *  # noqa: F403
from imaradesk.settings.base import CACHES, CHANNEL_LAYER_SOCKET_TIMEOUT, CHANNEL_LAYERS, REDIS_URL


def _redis_db(url: str, db: int) -> str:
    return urlsplit(url)._replace(path=f"/{db}").geturl()


# Keep test traffic away from a `make run` on the same Redis: its own database number.
TEST_REDIS_URL = _redis_db(REDIS_URL, int(os.environ.get("TEST_REDIS_DB", "9")))
REDIS_URL = TEST_REDIS_URL
CACHES["default"]["LOCATION"] = TEST_REDIS_URL
CACHES["default"]["KEY_PREFIX"] = "imaradesk-test"
CHANNEL_LAYERS["default"]["CONFIG"] = {
    "hosts": [{"address": TEST_REDIS_URL, "socket_timeout": CHANNEL_LAYER_SOCKET_TIMEOUT}],
    "prefix": "imaradesk-test:asgi",
}
CELERY_BROKER_URL = TEST_REDIS_URL
CELERY_RESULT_BACKEND = TEST_REDIS_URL

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
LOG_FORMAT = "text"
LOGGING["handlers"]["console"]["formatter"] = "text"  # noqa: F405
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
# Tests run their own Celery worker on their own queue, so no other worker takes their tasks.
CELERY_TASK_DEFAULT_QUEUE = "imaradesk-test"
# The test worker serves every task from the one test queue (the AI queue split is production's).
CELERY_AI_QUEUE = CELERY_TASK_DEFAULT_QUEUE
CELERY_TASK_ROUTES = {}

# No connection pool in tests: a pool opened before the test database exists keeps
# handing out connections to the development database.
DATABASES["default"]["OPTIONS"] = {}  # noqa: F405
AI_RETRY_DELAY_SECONDS = 0.0
# A failed hand-off ticket is retried within seconds by the test worker.
TICKET_HANDOFF_RETRY_SECONDS = 1

# The test Celery worker lets API Call nodes reach the tests' loopback HTTP servers (conftest
# sets this for the worker process only); the test process keeps the refusal, which
# apps/flows/tests/test_egress.py proves. Production settings never read it.
FLOWS_EGRESS_ALLOW_LOOPBACK = os.environ.get("TEST_FLOWS_EGRESS_ALLOW_LOOPBACK") == "1"
