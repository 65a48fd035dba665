"""Outbound throughput: messages/s through the outbox and Celery workers to a fake Graph API.

    python -m benchmarks.outbox_throughput [--messages 3000] [--rate 1000] [--workers 2] [--threads 8]

Creates a throwaway tenant whose number's governor allows --rate messages/s, queues
--messages sends through the outbox, and times real Celery worker processes delivering
them to a local fake of the Graph API (an asyncio server in its own process, so that the
fake is not what is measured). The rows are enqueued first (timed on their own); then the
governor's bucket is emptied (its one-second burst spent, so the rate through the outbox
can at most equal --rate) and one drain is requested, as the first commit would: the clock
runs from that request until every row is recorded as sent or failed. In the same run, a
baseline: the same number of direct Graph API calls from one client (keep-alive pool,
--workers x --threads threads), without outbox, governor or Celery. Prints the rate
against the governor's and against the baseline, and counts duplicate sends (message
requests the fake saw more than once, by body).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import django
import httpx

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Producer and workers share a queue of their own, so a running `make run` worker takes no part.
os.environ["CELERY_DEFAULT_QUEUE"] = "benchmark-outbox"
django.setup()

from django.conf import settings  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.core.tenancy import current_schema, tenant_context  # noqa: E402
from apps.tenants.models import Organization, WhatsAppAccount  # noqa: E402
from apps.tenants.services import organization_create  # noqa: E402
from apps.whatsapp import governor  # noqa: E402
from apps.whatsapp import messages as wa  # noqa: E402
from apps.whatsapp.client import GraphSendPool, NumberSender, WhatsAppClient  # noqa: E402
from apps.whatsapp.models import OutboxMessage  # noqa: E402
from apps.whatsapp.outbox import MessageSender, outbox_drain_request, outbox_enqueue, scheduling  # noqa: E402
from benchmarks._setup import database_ready  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUEUE = os.environ["CELERY_DEFAULT_QUEUE"]


def _workers(count: int, threads: int, graph_url: str) -> list[subprocess.Popen[bytes]]:
    env = dict(os.environ)
    env.update({"WHATSAPP_GRAPH_URL": graph_url, "CELERY_DEFAULT_QUEUE": QUEUE, "LOG_LEVEL": os.environ["LOG_LEVEL"]})
    command = [sys.executable, "-m", "celery", "-A", "imaradesk", "worker", "-Q", QUEUE, "-P", "threads"]
    level = os.environ["LOG_LEVEL"].lower()
    return [
        subprocess.Popen(
            [*command, "-c", str(threads), "-n", f"bench{i}-{uuid.uuid4().hex[:6]}@%h", "-l", level],
            cwd=ROOT,
            env=env,
        )
        for i in range(count)
    ]


def _fake_start() -> tuple[subprocess.Popen[str], str]:
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.graph_api"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert fake.stdout is not None
    return fake, fake.stdout.readline().strip()


def _fake_stop(fake: subprocess.Popen[str]) -> None:
    fake.terminate()
    fake.wait(timeout=10)


def _workers_stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=30)


def _fake_call(url: str, path: str) -> dict[str, int]:
    method = "GET" if path.endswith("stats") else "POST"
    result: dict[str, int] = httpx.request(method, f"{url}{path}", timeout=30).json()
    return result


def _baseline(url: str, account: WhatsAppAccount, count: int, threads: int, *, transport: str) -> float:
    """Direct calls from one process: through httpx (WhatsAppClient) or the outbox's send pool."""
    client: MessageSender
    if transport == "httpx":
        http = httpx.Client(limits=httpx.Limits(max_connections=threads, max_keepalive_connections=threads))
        client = WhatsAppClient(phone_number_id=account.phone_number_id, access_token="bench", base_url=url, http=http)
    else:
        pool = GraphSendPool(base_url=url, version=settings.WHATSAPP_GRAPH_VERSION)
        client = NumberSender(pool=pool, phone_number_id=account.phone_number_id, access_token="bench")
    payload = {"to": "254711000001", "type": "text", "text": {"body": "baseline"}}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as executor:
        list(executor.map(lambda _i: client.send(payload), range(count)))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    if not 1 <= args.rate <= 1000:
        parser.error("--rate: a number may send 1 to 1,000 messages/s")

    database_ready()
    with contextlib.ExitStack() as cleanup:  # undone in reverse: workers, tenant, fake
        fake, url = _fake_start()
        cleanup.callback(_fake_stop, fake)
        tag = uuid.uuid4().hex[:8]
        created = organization_create(slug=f"bench-{tag}", name="Outbox benchmark", domain=f"bench-{tag}.localhost")
        # Dropping the schema first removes the tenant rows that point at the number;
        # the number itself goes with the organization.
        cleanup.callback(lambda: Organization.objects.get(pk=created.organization.pk).delete(force_drop=True))
        account = WhatsAppAccount.objects.create(
            tenant=created.organization,
            name="bench",
            phone_number_id=f"bench{tag}",
            access_token="bench-token",
            rate_limit_per_second=args.rate,
        )
        workers = _workers(args.workers, args.threads, url)
        cleanup.callback(_workers_stop, workers)
        threads = args.threads * args.workers
        baseline_httpx = _baseline(url, account, args.messages, threads, transport="httpx")
        baseline = _baseline(url, account, args.messages, threads, transport="pool")
        _fake_call(url, "/_fake/reset")
        time.sleep(3)  # let the workers finish starting
        window = timezone.now() + timedelta(hours=1)
        with tenant_context(created.organization):
            schema = current_schema()
            # Hold the number's drain flag while the rows go in, so that their after-commit drain
            # requests are no-ops: the enqueue is timed apart from the sending.
            scheduling._redis(settings.REDIS_URL).set(scheduling._flag_key(schema, account.pk), "1", ex=600)
            enqueue_started = time.perf_counter()
            with transaction.atomic():
                for i in range(args.messages):
                    outbox_enqueue(
                        account=account,
                        # One message per customer, as a campaign: one customer's messages go one
                        # at a time, in order (only a recipient's oldest unsent row is due).
                        to_wa_id=f"2547{i:08d}",
                        message=wa.text(f"benchmark message #{i}"),
                        idempotency_key=f"bench-{tag}-{i}",
                        window_expires_at=window,
                    )
            enqueue_elapsed = time.perf_counter() - enqueue_started
            # Spend the bucket's one-second burst, so that the governor's rate is the ceiling.
            number = account.phone_number_id
            governor.send_slots_take(phone_number_id=number, rate_per_second=args.rate, live=args.rate, bulk=0)
            started = time.perf_counter()
            outbox_drain_request(account_id=account.pk, schema=schema, force=True)
            deadline = started + 300
            first_at: float | None = None
            while time.perf_counter() < deadline:
                done = OutboxMessage.objects.filter(status__in=["sent", "failed"]).count()
                if first_at is None and done:
                    first_at = time.perf_counter() - started
                if done >= args.messages:
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            sent = OutboxMessage.objects.filter(status="sent").count()
            failed = OutboxMessage.objects.filter(status="failed").count()
        stats = _fake_call(url, "/_fake/stats")
    from imaradesk.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(QUEUE)  # type: ignore[attr-defined]

    rate = sent / elapsed
    print(
        f"outbox throughput: {args.messages} messages, governor {args.rate}/s, "
        f"{args.workers} worker processes x {args.threads} threads, fake Graph API on loopback (own process)"
    )
    print(f"  baseline: direct Graph API calls    {baseline:8.0f} msg/s (the outbox's send pool, {threads} threads)")
    print(f"            the same through httpx    {baseline_httpx:8.0f} msg/s (no outbox, governor or Celery)")
    print(f"  through the outbox                  {rate:8.0f} msg/s ({sent} sent, {failed} failed, {elapsed:.2f} s)")
    print(f"    first row sent {first_at or 0:.2f} s after the drain was requested")
    print(f"  enqueue (outbox_enqueue, one transaction): {args.messages / enqueue_elapsed:.0f} rows/s")
    print(
        f"  duplicate sends: {stats['duplicates']}; message requests seen by the fake API: {stats['messages']} "
        f"({stats['distinct']} distinct)"
    )
    figures = {"baseline": round(baseline), "baseline_httpx": round(baseline_httpx), "outbox": round(rate)}
    print("  " + json.dumps({**figures, "duplicates": stats["duplicates"]}))
    print(f"  ratio: {rate / args.rate:.2f}x the governor's rate, {rate / baseline:.2f}x the direct-call baseline")


if __name__ == "__main__":
    main()
