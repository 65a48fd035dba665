"""Inbox fan-out: from a signed webhook POST to the event on every connected agent's socket.

    python -m benchmarks.inbox_fanout [--agents 200] [--messages 30] [--web-processes 1] [--back-to-back]

Starts the ASGI server (uvicorn, one process as `make run` does, or `--web-processes N`) and Celery workers,
creates a throwaway tenant with `--agents` agents, opens one `/ws/inbox/` socket per agent,
then measures in one run:
  1. the baseline: the websocket layer alone, a channel-layer `group_send` to the tenant's
     events group until every socket has the event;
  2. the product path: a signed webhook POST (verify, store, ack), the worker (parse,
     contact, conversation, message), the `message.created` event, the visibility filter
     of each socket, until every socket has it.
Each message comes from a new customer, so the bot answers it, hands it off, opens a ticket
and assigns it, which sends four more events to every socket. By default the next message is
sent once the workers have finished that, the sandbox's delivery receipts included (the
latency of one message, the target);
`--back-to-back` sends it as soon as the previous one reached every socket, a load test of
about four new conversations a second on one tenant.
Prints p50/p99 over all (message, socket) arrivals and the ratio to the baseline.
BENCH_UVICORN_ARGS overrides the server's extra flags (default: as `make run`, no per-message deflate);
BENCH_LOG_LEVEL=INFO shows the workers' task lines (with --rounds, to find a slow round's cause).
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
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imaradesk.settings.base")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ["CELERY_DEFAULT_QUEUE"] = "benchmark-inbox-fanout"
os.environ["CELERY_AI_QUEUE"] = "benchmark-inbox-fanout-ai"
django.setup()

import httpx  # noqa: E402
import websockets  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY  # noqa: E402
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402

from apps.accounts.models import AgentProfile  # noqa: E402
from apps.accounts.roles import AGENT  # noqa: E402
from apps.accounts.services import user_create  # noqa: E402
from apps.core.realtime import EVENTS_TOPIC, event_message, tenant_group  # noqa: E402
from apps.core.tenancy import tenant_context  # noqa: E402
from apps.tenants.models import Organization, WhatsAppAccount  # noqa: E402
from apps.tenants.services import organization_create  # noqa: E402
from apps.whatsapp.webhooks import sign  # noqa: E402
from benchmarks._setup import database_ready  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
QUEUE = os.environ["CELERY_DEFAULT_QUEUE"]
SANDBOX_LAST_RECEIPT_SECONDS = 3.2  # apps.whatsapp.sandbox: "read" 3 s after a reply
AI_QUEUE = os.environ["CELERY_AI_QUEUE"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "CELERY_DEFAULT_QUEUE": QUEUE,
            "CELERY_AI_QUEUE": AI_QUEUE,
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "DJANGO_DEBUG": "1",
        }
    )
    return env


def _start(port: int, web_processes: int) -> list[subprocess.Popen[bytes]]:
    bin_dir = Path(sys.executable).parent
    server = subprocess.Popen(
        [str(bin_dir / "uvicorn"), "imaradesk.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--lifespan", "off", "--no-access-log", "--timeout-graceful-shutdown", "5", "--workers", str(web_processes),
         *os.environ.get("BENCH_UVICORN_ARGS", "--ws-per-message-deflate False").split()],
        cwd=ROOT, env=_env(),
    )  # fmt: skip
    ai_worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "imaradesk", "worker", "-Q", AI_QUEUE, "-P", "threads", "-c", "2",
         "-n", f"fanout-ai-{uuid.uuid4().hex[:6]}@%h", "-l", "warning", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env={**_env(), "IMARADESK_WARM_AI": "1"},
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "imaradesk", "worker", "-Q", QUEUE, "-P", "threads", "-c", "4",
         "-n", f"fanout-{uuid.uuid4().hex[:6]}@%h", "-l", "warning", "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=_env(),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return [server, worker, ai_worker]
        except httpx.HTTPError:
            time.sleep(0.2)
    for process in (server, worker, ai_worker):
        process.kill()
    raise RuntimeError("the server did not start")


def _sessions(organization: Organization, count: int) -> list[str]:
    keys = []
    with tenant_context(organization):
        for i in range(count):
            user = user_create(email=f"agent{i}@fanout.test", password=None, role=AGENT)
            session = SessionStore()
            session[SESSION_KEY] = str(user.pk)
            session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            session.create()
            keys.append(str(session.session_key))
        AgentProfile.objects.update(status=AgentProfile.Status.OFFLINE)  # nobody auto-assigned
    return keys


class Sockets:
    """N agent sockets; `arrivals[token]` collects the time each socket saw an event with `token`."""

    def __init__(self) -> None:
        self.connections: list[Any] = []
        self.arrivals: dict[str, list[float]] = {}
        self.event_ids: dict[str, str] = {}  # the event's stream id: Redis's clock when it was published
        self.done: dict[str, asyncio.Event] = {}
        self.expected = 0

    def expect(self, token: str) -> asyncio.Event:
        self.arrivals[token] = []
        self.done[token] = asyncio.Event()
        return self.done[token]

    async def open(self, url: str, host: str, keys: list[str]) -> None:
        for key in keys:
            connection = await websockets.connect(
                f"ws://{host}{url}",  # the tenant's host name in the URL (Host header), the socket to loopback
                host="127.0.0.1",
                port=int(host.rsplit(":", 1)[1]),
                additional_headers={"Origin": f"http://{host}", "Cookie": f"sessionid={key}"},
                max_queue=None,
            )
            hello = json.loads(await connection.recv())
            if hello["type"] != "hello":
                raise RuntimeError(f"unexpected first frame {hello}")
            self.connections.append(connection)
            asyncio.get_running_loop().create_task(self._read(connection))
        self.expected = len(self.connections)

    async def _read(self, connection: Any) -> None:
        async for frame in connection:
            now = time.perf_counter()
            # Frames this run does not time (statuses, analysis, assignment) are not parsed: a
            # browser on another machine would do that work, here it would compete for the CPU.
            if '"bench.ping"' not in frame and '"message.created"' not in frame:
                continue
            event = json.loads(frame)
            token = str(event.get("data", {}).get("preview") or event.get("data", {}).get("token") or "")
            if token in self.arrivals:
                self.event_ids.setdefault(token, str(event.get("id") or ""))
                self.arrivals[token].append(now)
                if len(self.arrivals[token]) >= self.expected:
                    self.done[token].set()

    async def close(self) -> None:
        for connection in self.connections:
            await connection.close()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _webhook(phone_number_id: str, token: str, customer: str) -> bytes:
    """A message from a new customer each time: an unassigned conversation every agent may see."""
    message = {"from": customer, "id": f"wamid.fanout.{token}", "timestamp": str(int(time.time())),
               "type": "text", "text": {"body": token}}  # fmt: skip
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "254700000000", "phone_number_id": phone_number_id},
        "contacts": [{"profile": {"name": "Fan-out"}, "wa_id": customer}],
        "messages": [message],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _cpu_seconds(pid: int, *, children: bool = True) -> float:
    """User + system CPU time of a process (and its live children) so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = [
            int(kid) for task in Path(f"/proc/{pid}/task").iterdir() for kid in (task / "children").read_text().split()
        ]
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu_seconds(kid) for kid in kids) if children else own


async def _quiet(*pids: int, timeout: float = 180.0, step: float = 0.5) -> float:
    """Wait until processes have used under 10 % of a core for three steps in a row."""
    started = time.monotonic()
    calm = 0
    while calm < 3 and time.monotonic() - started < timeout:
        before = sum(_cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(step)
        calm = calm + 1 if sum(_cpu_seconds(pid) for pid in pids) - before < step / 10 else 0
    return time.monotonic() - started


async def _measure(
    args: argparse.Namespace, port: int, host: str, schema: str, number: str, keys: list[str], pids: dict[str, int]
) -> None:
    sockets = Sockets()
    await sockets.open("/ws/inbox/", f"{host}:{port}", keys)
    waited = await _quiet(pids["ai"])
    print(f"  the AI worker loaded its models ({waited:.1f} s after the sockets opened)")
    layer = get_channel_layer()
    assert layer is not None
    group = tenant_group(schema, EVENTS_TOPIC)
    results: dict[str, list[float]] = {"baseline": [], "webhook": []}
    acks: list[float] = []
    published: list[float] = []  # webhook POST -> the event recorded in the stream, just before its group_send
    spread: list[float] = []  # the event recorded -> the last socket has it
    cpu: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for round_ in range(args.messages + 3):  # the first rounds warm caches and connections
            if round_ == 3:
                cpu = {name: _cpu_seconds(pid, children=name != "client") for name, pid in pids.items()}
            for kind in ("baseline", "webhook"):
                token = f"{kind}-{round_}-{uuid.uuid4().hex[:8]}"
                done = sockets.expect(token)
                started = time.perf_counter()
                wall_started = time.time()
                if kind == "baseline":
                    await layer.group_send(group, {**event_message("bench.ping", {"token": token}), "id": ""})
                else:
                    body = _webhook(number, token, customer=f"2547{round_:08d}")
                    signature = sign(body, settings.WHATSAPP_APP_SECRET)
                    headers = {"Host": settings.PUBLIC_DOMAIN, "X-Hub-Signature-256": signature}
                    response = await client.post(
                        f"http://127.0.0.1:{port}/webhooks/whatsapp/", content=body, headers=headers
                    )
                    ack_ms = (time.perf_counter() - started) * 1000
                    if round_ >= 3:
                        acks.append(ack_ms)
                    if response.status_code != 200:
                        raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")
                try:
                    await asyncio.wait_for(done.wait(), timeout=30)
                except TimeoutError:
                    got = len(sockets.arrivals[token])
                    raise RuntimeError(f"{kind} event reached {got} of {sockets.expected} sockets in 30 s") from None
                arrivals = [(t - started) * 1000 for t in sockets.arrivals[token]]
                if round_ >= 3:
                    results[kind].extend(arrivals)
                    event_id = sockets.event_ids.get(token, "")
                    if kind == "webhook" and event_id:
                        at = int(event_id.split("-")[0]) / 1000 - wall_started
                        published.append(at * 1000)
                        spread.append(max(arrivals) - at * 1000)
                if args.rounds:
                    ack = f"  (ack {ack_ms:.1f} ms)" if kind == "webhook" else ""
                    print(f"  round {round_:3d} {kind:8s} first {min(arrivals):7.1f} ms  "
                          f"p50 {statistics.median(arrivals):7.1f} ms  last {max(arrivals):7.1f} ms{ack}")  # fmt: skip
                if not args.back_to_back and kind == "webhook":
                    # The bot's work on this message (analysis, flow, hand-off, ticket, assignment,
                    # and the delivery receipts the sandbox sends 0.2, 1 and 3 s after its reply)
                    # finishes before the next message arrives.
                    await asyncio.sleep(SANDBOX_LAST_RECEIPT_SECONDS)
                    await _quiet(pids["worker"], pids["ai"], step=0.2)
                await asyncio.sleep(0.05)
    cpu = {name: _cpu_seconds(pid, children=name != "client") - cpu[name] for name, pid in pids.items()}
    await sockets.close()
    print(f"inbox fan-out: {len(keys)} agent sockets on one tenant, {args.messages} messages, "
          f"{'back to back (load test)' if args.back_to_back else 'each once the workers finished the previous one'}, "
          f"uvicorn {args.web_processes} process(es), "
          "Celery workers (4 threads; AI queue 2 threads), all on this machine")  # fmt: skip
    for kind, label in (
        ("baseline", "baseline: group_send → every socket"),
        ("webhook", "webhook POST → every socket"),
    ):
        values = results[kind]
        print(f"  {label:38s} p50 {statistics.median(values):7.1f} ms  p99 {_pct(values, 99):7.1f} ms  "
              f"max {max(values):7.1f} ms  ({len(values)} arrivals)")  # fmt: skip
    print(
        f"  webhook ack (POST → 200)               p50 {statistics.median(acks):7.1f} ms  p99 {_pct(acks, 99):7.1f} ms"
    )
    if published:
        print(f"    of which POST → event published       p50 {statistics.median(published):7.1f} ms  "
              f"p99 {_pct(published, 99):7.1f} ms (the stream id's clock, ±1 ms)")  # fmt: skip
        print(f"    of which published → last socket      p50 {statistics.median(spread):7.1f} ms  "
              f"p99 {_pct(spread, 99):7.1f} ms")  # fmt: skip
    # CPU time is what a loaded machine multiplies into latency: the cost that is ours to cut.
    per_round = {name: seconds / args.messages * 1000 for name, seconds in cpu.items()}
    print(f"  CPU per round (a group_send and a webhook message): server {per_round['server']:.1f} ms, "
          f"worker {per_round['worker']:.1f} ms, AI worker {per_round['ai']:.1f} ms, "
          f"the benchmark's own {len(keys)} sockets {per_round['client']:.1f} ms; "
          f"load average {os.getloadavg()[0]:.1f}"
          f"{'' if args.back_to_back else ' (each round includes ~4 s of settling: idle work counts)'}")  # fmt: skip
    ratio = _pct(results["webhook"], 99) / _pct(results["baseline"], 99)
    print(
        f"  ratio (p99 webhook / p99 baseline): {ratio:.1f}x; target p99 ≤ 100 ms: "
        f"{'met' if _pct(results['webhook'], 99) <= 100 else 'NOT met'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--messages", type=int, default=30)
    parser.add_argument("--rounds", action="store_true", help="print each round's first/median/last arrival")
    parser.add_argument(
        "--back-to-back",
        action="store_true",
        help="a load test: send each message as soon as the previous one reached every socket, while the "
        "workers are still busy with the bot's work on it (default: once they finished)",
    )
    parser.add_argument(
        "--web-processes", type=int, default=1, help="uvicorn worker processes (default 1, as `make run`)"
    )
    args = parser.parse_args()

    database_ready()
    tag = uuid.uuid4().hex[:8]
    host = f"fanout-{tag}.localhost"
    created = organization_create(slug=f"fanout-{tag}", name="Fan-out benchmark", domain=host)
    number = f"fanout{tag}"
    WhatsAppAccount.objects.create(
        tenant=created.organization, name="bench", phone_number_id=number, transport=WhatsAppAccount.Transport.SANDBOX
    )
    keys = _sessions(created.organization, args.agents)
    port = _free_port()
    processes = _start(port, args.web_processes)
    try:
        pids = {"server": processes[0].pid, "worker": processes[1].pid, "ai": processes[2].pid, "client": os.getpid()}
        asyncio.run(_measure(args, port, host, created.organization.schema_name, number, keys, pids))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        Organization.objects.get(pk=created.organization.pk).delete(force_drop=True)
        from imaradesk.celery import app

        with app.connection_for_write() as conn:
            for queue in (QUEUE, AI_QUEUE):
                conn.default_channel.queue_purge(queue)  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
