"""Outbound throughput: messages/s through the outbox and Celery workers to a fake Graph API.

    python -m benchmarks.outbox_throughput [--messages 3000] [--rate 1000] [--workers 2] [--threads 8]

Creates a throwaway tenant whose number's governor allows --rate messages/s, queues
--messages sends through the outbox, and times real Celery worker processes delivering
them to a local fake of the Graph API. In the same run, a baseline: the same number of
direct Graph API calls from one client, without outbox, governor or Celery. Prints the
rate against the governor's and against the baseline, and counts duplicate sends.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Producer and workers share a queue of their own, so a running `make run` worker takes no part.
os.environ["CELERY_DEFAULT_QUEUE"] = "benchmark-outbox"
django.setup()

from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.core.tenancy import tenant_context  # noqa: E402
from apps.tenants.models import Organization, WhatsAppAccount  # noqa: E402
from apps.tenants.services import organization_create  # noqa: E402
from apps.whatsapp import messages as wa  # noqa: E402
from apps.whatsapp.client import WhatsAppClient  # noqa: E402
from apps.whatsapp.models import OutboxMessage  # noqa: E402
from apps.whatsapp.outbox import outbox_enqueue  # noqa: E402
from benchmarks._setup import database_ready  # noqa: E402
from tests.fakes.graph_api import FakeGraphApi  # noqa: E402

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


def _baseline(fake: FakeGraphApi, account: WhatsAppAccount, count: int, threads: int) -> float:
    client = WhatsAppClient(phone_number_id=account.phone_number_id, access_token="bench", base_url=fake.url)
    payload = {"to": "254711000001", "type": "text", "text": {"body": "baseline"}}
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda _i: client.send(payload), range(count)))
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    database_ready()
    fake = FakeGraphApi().start()
    tag = uuid.uuid4().hex[:8]
    created = organization_create(slug=f"bench-{tag}", name="Outbox benchmark", domain=f"bench-{tag}.localhost")
    account = WhatsAppAccount.objects.create(
        tenant=created.organization,
        name="bench",
        phone_number_id=f"bench{tag}",
        access_token="bench-token",
        rate_limit_per_second=args.rate,
    )
    workers = _workers(args.workers, args.threads, fake.url)
    try:
        baseline = _baseline(fake, account, args.messages, args.threads * args.workers)
        fake.reset()
        time.sleep(3)  # let the workers finish starting
        window = timezone.now() + timedelta(hours=1)
        with tenant_context(created.organization):
            with transaction.atomic():
                for i in range(args.messages):
                    outbox_enqueue(
                        account=account,
                        to_wa_id="254711000001",
                        message=wa.text(f"benchmark message #{i}"),
                        idempotency_key=f"bench-{tag}-{i}",
                        window_expires_at=window,
                    )
            started = time.perf_counter()  # the sends are queued as the transaction commits
            deadline = started + 300
            while time.perf_counter() < deadline:
                done = OutboxMessage.objects.filter(status__in=["sent", "failed"]).count()
                if done >= args.messages:
                    break
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            sent = OutboxMessage.objects.filter(status="sent").count()
            failed = OutboxMessage.objects.filter(status="failed").count()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        # Dropping the schema first removes the tenant rows that point at the number;
        # the number itself goes with the organization.
        Organization.objects.get(pk=created.organization.pk).delete(force_drop=True)
        fake.stop()
        from imaradesk.celery import app

        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(QUEUE)  # type: ignore[attr-defined]

    bodies = Counter(str(request.body.get("text", {}).get("body")) for request in fake.sent_messages())
    duplicates = sum(count - 1 for count in bodies.values() if count > 1)
    rate = sent / elapsed
    print(
        f"outbox throughput: {args.messages} messages, governor {args.rate}/s, "
        f"{args.workers} worker processes x {args.threads} threads, fake Graph API on loopback"
    )
    print(f"  baseline: direct Graph API calls    {baseline:8.0f} msg/s (no outbox, governor or Celery)")
    print(f"  through the outbox                  {rate:8.0f} msg/s ({sent} sent, {failed} failed, {elapsed:.1f} s)")
    print(f"  duplicate sends: {duplicates}; requests seen by the fake API: {sum(bodies.values())}")
    print(f"  ratio: {rate / args.rate:.2f}x the governor's rate, {rate / baseline:.2f}x the direct-call baseline")


if __name__ == "__main__":
    main()
