"""Shared fixtures: two real tenants on real PostgreSQL, real Redis and a real Celery worker.

The tenants are created once per session and committed (schemas cannot live inside a
per-test transaction that other threads and processes must see). Tests that need
committed rows (websockets, Celery) use `committed_db` and clean up after themselves.
Never use pytest-django's `transactional_db`: its flush would truncate the public schema.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import translation

from apps.accounts.models import User
from apps.core.tenancy import schema_context, use_public_schema
from apps.tenants.models import Organization, WhatsAppAccount
from apps.tenants.services import organization_create, platform_ensure
from apps.whatsapp.webhooks import routes_forget
from tests.fakes.graph_api import FakeGraphApi

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"


@dataclass(frozen=True)
class TenantSetup:
    organization: Organization
    domain: str
    admin_email: str
    password: str
    whatsapp: WhatsAppAccount

    @property
    def schema(self) -> str:
        return self.organization.schema_name

    def client(self) -> Client:
        return Client(HTTP_HOST=self.domain)


def _tenant(slug: str, phone_number_id: str) -> TenantSetup:
    domain = f"{slug}.localhost"
    created = organization_create(
        slug=slug, name=slug.title(), domain=domain, admin_email=f"admin@{slug}.test", admin_password=PASSWORD
    )
    account = WhatsAppAccount.objects.create(
        tenant=created.organization,
        name=f"{slug.title()} support",
        phone_number_id=phone_number_id,
        display_phone_number=f"+254 700 {phone_number_id[-6:]}",
        access_token=f"token-{slug}",
    )
    return TenantSetup(
        organization=created.organization,
        domain=domain,
        admin_email=f"admin@{slug}.test",
        password=PASSWORD,
        whatsapp=account,
    )


@pytest.fixture(scope="session")
def django_db_setup(
    request: pytest.FixtureRequest, django_test_environment: None, django_db_blocker: Any
) -> Iterator[dict[str, TenantSetup]]:
    """Create the test database and the two tenants, whichever tests run.

    pytest-django would only create the database for tests marked `django_db`; the
    committed tests (websockets, Celery) need it too.
    """
    from django.test.utils import setup_databases, teardown_databases

    verbosity = request.config.option.verbose
    with django_db_blocker.unblock():
        db_cfg = setup_databases(verbosity=verbosity, interactive=False, aliases={"default": {}})
        platform_ensure(public_domain="localhost")
        tenants = {"a": _tenant("alpha", "100000000000001"), "b": _tenant("beta", "200000000000002")}
    yield tenants
    with django_db_blocker.unblock():
        teardown_databases(db_cfg, verbosity=verbosity)


@pytest.fixture(scope="session")
def tenant_a(django_db_setup: dict[str, TenantSetup]) -> TenantSetup:
    return django_db_setup["a"]


@pytest.fixture(scope="session")
def tenant_b(django_db_setup: dict[str, TenantSetup]) -> TenantSetup:
    return django_db_setup["b"]


def sign_in_limits_clear() -> None:
    """Forget failed sign-ins and API throttle counts, in every tenant (they outlive a test run)."""
    client = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    for pattern in ("*:sign-in-failures:*", "*:throttle_*"):
        for key in client.scan_iter(pattern):
            client.delete(key)


@pytest.fixture(scope="session", autouse=True)
def _sign_in_limits_fresh() -> None:
    sign_in_limits_clear()


@pytest.fixture(autouse=True)
def _public_schema_after_test() -> Iterator[None]:
    routes_forget()  # a test's rolled-back numbers must not be routed from the cache
    yield
    use_public_schema()
    translation.activate(settings.LANGUAGE_CODE)  # a French request must not leave French on


@pytest.fixture
def committed_db(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    """Database access without the per-test transaction: writes are visible to other threads."""
    with django_db_blocker.unblock():
        yield
        use_public_schema()


def admin_user(tenant: TenantSetup) -> User:
    with schema_context(tenant.schema):
        return User.objects.get(email=tenant.admin_email)


# --- The fake Graph API -------------------------------------------------------------------


@pytest.fixture(scope="session")
def graph_server() -> Iterator[FakeGraphApi]:
    """One fake Graph API for the session; the settings (and the test worker) point at it."""
    fake = FakeGraphApi().start()
    previous = settings.WHATSAPP_GRAPH_URL
    settings.WHATSAPP_GRAPH_URL = fake.url
    yield fake
    settings.WHATSAPP_GRAPH_URL = previous
    fake.stop()


@pytest.fixture
def graph_api(graph_server: FakeGraphApi) -> Iterator[FakeGraphApi]:
    graph_server.reset()
    yield graph_server
    graph_server.reset()


# --- A real Celery worker process ---------------------------------------------------------


def outbox_drain_flags_clear() -> None:
    """Forget every "a drain of this number is queued" flag (their tasks were purged or faked)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter("imaradesk:whatsapp:drain*"):
        client.delete(key)


def _test_database_url() -> str:
    parts = urlsplit(settings.DATABASE_URL)
    return parts._replace(path=f"/{connection.settings_dict['NAME']}").geturl()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: Any, django_db_blocker: Any, graph_server: FakeGraphApi) -> Iterator[str]:
    """Start `celery worker` in its own process, on the test broker and the test database."""
    from imaradesk.celery import app

    with django_db_blocker.unblock():
        database_url = _test_database_url()
    node = f"test-{uuid.uuid4().hex[:8]}@localhost"
    app.control.purge()  # tasks queued by earlier tests that ran without a worker
    outbox_drain_flags_clear()  # ... and the outbox's "a drain is queued" flags that went with them
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "imaradesk.settings.test",
            "DATABASE_URL": database_url,
            "PYTHONPATH": str(ROOT),
            "DB_POOL_MAX_SIZE": "4",
            "WHATSAPP_GRAPH_URL": graph_server.url,
            "TEST_FLOWS_EGRESS_ALLOW_LOOPBACK": "1",  # API Call nodes reach the tests' loopback servers
        }
    )
    log_path = ROOT / "var" / "test-celery-worker.log"
    log_path.parent.mkdir(exist_ok=True)
    log = log_path.open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "celery", "-A", "imaradesk", "worker",
            "-Q", settings.CELERY_TASK_DEFAULT_QUEUE, "-n", node, "-c", "2", "-P", "threads",
            "-I", "tests.celery_probe", "--without-mingle", "--without-gossip", "-l", "info",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")
            replies = app.control.ping(destination=[node], timeout=0.5)
            if replies:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery worker did not answer:\n{log_path.read_text()[-3000:]}")
        yield node
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- A real HTTP server and a real browser ------------------------------------------------


@dataclass(frozen=True)
class LiveServer:
    port: int

    def url(self, tenant: TenantSetup, path: str = "/") -> str:
        """The tenant's site on this server: Chromium resolves *.localhost to the loopback."""
        return f"http://{tenant.domain}:{self.port}{path}"


@pytest.fixture(scope="session")
def live_server_tenants(django_db_setup: Any, django_db_blocker: Any) -> Iterator[LiveServer]:
    """The whole ASGI app (HTTP + websockets) under uvicorn, on the test database, for browsers.

    pytest-django's own `live_server` forces `transactional_db`, whose flush would drop the
    session's tenants; this one shares the committed test database instead.
    """
    import socket
    import threading

    import uvicorn
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    from imaradesk.asgi import application

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(
        ASGIStaticFilesHandler(application),  # type: ignore[arg-type]  # any ASGI app works
        host="127.0.0.1",
        port=port,
        log_level="warning",
        loop="asyncio",  # the test process keeps plain asyncio loops everywhere
        lifespan="off",
    )
    server = uvicorn.Server(config)
    with django_db_blocker.unblock():
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the test ASGI server did not start")
            time.sleep(0.05)
        try:
            yield LiveServer(port=port)
        finally:
            server.should_exit = True
            thread.join(timeout=20)
            _close_other_connections()


def _close_other_connections() -> None:
    """End the server threads' database sessions, so the test database can be dropped."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = ''"
            " AND backend_type = 'client backend' AND state = 'idle'"
        )


CHROMIUM_ARGS = [
    # The machine's network is closed: no background connections, no component updates.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (scripts/ensure_chromium.sh installs it).

    Playwright's sync API keeps an event loop on the test's thread, which trips Django's
    async-safety guard for the test's own ORM calls; the guard is lifted for the browser
    tests' module only, and put back after it.
    """
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            instance = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
            try:
                yield instance
            finally:
                instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def ticket_inserts_refuse(*, refuse: bool) -> None:
    """Make inserting a ticket fail in the current schema (a database error), or stop doing so."""
    with connection.cursor() as cursor:
        if refuse:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION tickets_refuse_insert() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RAISE EXCEPTION 'tickets refused by a test'; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER tickets_refuse_insert BEFORE INSERT ON tickets_ticket "
                "FOR EACH ROW EXECUTE FUNCTION tickets_refuse_insert()"
            )
        else:
            cursor.execute("DROP TRIGGER IF EXISTS tickets_refuse_insert ON tickets_ticket")
            cursor.execute("DROP FUNCTION IF EXISTS tickets_refuse_insert()")


def tenant_conversations_wipe(tenant: TenantSetup) -> None:
    """Empty a tenant's contacts, conversations, messages and outbox after a committed test.

    One TRUNCATE ... CASCADE: a Celery worker may still be adding a bot reply or a status,
    and row-by-row deletes would race it (a message inserted after its conversation's delete
    was planned breaks the foreign key at commit).
    """
    from django.db import OperationalError, transaction

    tables = ["contacts_contact", "conversations_conversation", "conversations_message", "whatsapp_outboxmessage"]
    for attempt in range(5):
        try:
            with schema_context(tenant.schema), transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
            return
        except OperationalError as error:
            # The worker's last task may hold a ticket table and wait for a conversation row
            # while the TRUNCATE holds the conversations and waits for the ticket tables
            # (CASCADE): PostgreSQL ends one of them. If it was this one, the task is done by now.
            if "deadlock" not in str(error) or attempt == 4:
                raise
            time.sleep(0.5)


def session_key_for(schema: str, user: User) -> str:
    """A signed-in session for `user` in a tenant's schema (for websocket cookies)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    with schema_context(schema):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        return str(session.session_key)
