"""Webhook ingest throughput and ack latency on the real ASGI server, against a bare Django view.

    python -m benchmarks.webhook_ingest [--requests 3000] [--concurrency 32] [--rate 100] [--seconds 10]

Starts uvicorn the way `make run` does (one process, same flags; production settings),
creates a throwaway tenant with a WhatsApp number, then measures in one run:
  1. the baseline: GET /ping, a Django view that returns 200 with no work;
  2. signed webhook POSTs (verify, store, enqueue), same concurrency;
  3. webhook POSTs at a fixed rate, for the p99 ack latency at that rate.
Everything it created is removed afterwards. Needs the services of `scripts/stack.py up`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.tenants.models import Organization, WebhookEvent, WhatsAppAccount  # noqa: E402
from apps.tenants.services import organization_create  # noqa: E402
from apps.whatsapp.webhooks import sign  # noqa: E402
from benchmarks._setup import database_ready  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "benchmark-webhook-ingest"


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def line(self) -> str:
        return (
            f"  {self.name:34s} {self.throughput:8.0f} req/s   p50 {self.pct(0.5):6.1f} ms   "
            f"p99 {self.pct(0.99):6.1f} ms   errors {self.errors}"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_server(port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "benchmark-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
            "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
            "WHATSAPP_APP_SECRET": settings.WHATSAPP_APP_SECRET,
            "WHATSAPP_VERIFY_TOKEN": settings.WHATSAPP_VERIFY_TOKEN,
            "SECURE_SSL_REDIRECT": "0",
            "CELERY_DEFAULT_QUEUE": QUEUE,
            "LOG_LEVEL": "WARNING",
        }
    )
    command = [
        str(Path(sys.executable).parent / "uvicorn"), "imaradesk.asgi:application", "--host", "127.0.0.1",
        "--port", str(port), "--lifespan", "off", "--no-access-log", "--timeout-graceful-shutdown", "5",
    ]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("the server did not start")


def _webhook_headers(host: str, body: bytes) -> dict[str, str]:
    signature = sign(body, settings.WHATSAPP_APP_SECRET)
    return {"Host": host, "X-Hub-Signature-256": signature, "Content-Type": "application/json"}


async def _closed_loop(name: str, url: str, host: str, bodies: Sequence[bytes | None], concurrency: int) -> Result:
    """`concurrency` clients, each sending its next request as soon as the last one is answered."""
    latencies: list[float] = []
    errors = 0
    queue = list(reversed(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while queue:
                body = queue.pop()
                started = time.perf_counter()
                if body is None:
                    response = await client.get(url, headers={"Host": host})
                else:
                    response = await client.post(url, content=body, headers=_webhook_headers(host, body))
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Result(name, len(bodies), elapsed, latencies, errors)


async def _open_loop(name: str, url: str, host: str, bodies: list[bytes], rate: float) -> Result:
    """Requests started at a fixed rate, whatever the answers do (latency as Meta would see it)."""
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200), timeout=30) as client:

        async def one(body: bytes) -> None:
            nonlocal errors
            headers = _webhook_headers(host, body)
            started = time.perf_counter()
            response = await client.post(url, content=body, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                errors += 1

        tasks = []
        started = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return Result(name, len(bodies), elapsed, latencies, errors)


def _bodies(phone_number_id: str, count: int, tag: str) -> list[bytes]:
    now = str(int(time.time()))
    out = []
    for i in range(count):
        message = {"from": "254711000001", "id": f"wamid.bench.{tag}.{i}", "timestamp": now,
                   "type": "text", "text": {"body": f"benchmark message {i}"}}  # fmt: skip
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "254700000000", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": "254711000001"}],
            "messages": [message],
        }
        change = {"field": "messages", "value": value}
        payload = {"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [change]}]}
        out.append(json.dumps(payload, separators=(",", ":")).encode())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    database_ready()
    tag = uuid.uuid4().hex[:8]
    created = organization_create(slug=f"bench-{tag}", name="Webhook benchmark", domain=f"bench-{tag}.localhost")
    number = f"bench{tag}"
    WhatsAppAccount.objects.create(
        tenant=created.organization, name="bench", phone_number_id=number, transport=WhatsAppAccount.Transport.SANDBOX
    )
    port = _free_port()
    server = _start_server(port)
    base = f"http://127.0.0.1:{port}"
    host = settings.PUBLIC_DOMAIN
    try:
        # Warm both paths (connections, imports) before measuring.
        asyncio.run(_closed_loop("warm-up", f"{base}/ping", host, [None] * 200, 8))  # warm both paths
        asyncio.run(_closed_loop("warm-up", f"{base}/webhooks/whatsapp/", host, _bodies(number, 200, tag + "w"), 8))
        baseline = asyncio.run(
            _closed_loop(
                "baseline: bare Django view (/ping)", f"{base}/ping", host, [None] * args.requests, args.concurrency
            )
        )
        webhook = asyncio.run(
            _closed_loop(
                "signed webhook POST",
                f"{base}/webhooks/whatsapp/",
                host,
                _bodies(number, args.requests, tag),
                args.concurrency,
            )
        )
        fixed = asyncio.run(
            _open_loop(
                f"webhook at a fixed {args.rate:.0f}/s",
                f"{base}/webhooks/whatsapp/",
                host,
                _bodies(number, int(args.rate * args.seconds), tag + "r"),
                args.rate,
            )
        )
        stored = WebhookEvent.objects.filter(phone_number_id=number).count()
    finally:
        server.terminate()
        server.wait(timeout=15)
        WebhookEvent.objects.filter(phone_number_id=number).delete()
        WhatsAppAccount.objects.filter(phone_number_id=number).delete()
        Organization.objects.get(pk=created.organization.pk).delete(force_drop=True)
        from imaradesk.celery import app

        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(QUEUE)  # type: ignore[attr-defined]

    expected = args.requests + 200 + int(args.rate * args.seconds)
    print(f"webhook ingest on uvicorn (1 process, like make run), concurrency {args.concurrency}, {args.requests} each")
    for result in (baseline, webhook, fixed):
        print(result.line())
    print(f"  stored events: {stored} of {expected} sent (every acknowledged webhook is stored)")
    print(f"  ratio: webhook throughput is {webhook.throughput / baseline.throughput:.2f}x the bare-view baseline")
    print(f"  median webhook ack {statistics.median(webhook.latencies_ms):.1f} ms at concurrency {args.concurrency}")


if __name__ == "__main__":
    main()
