"""`resnet-lab serve` (web app + local workers), `resnet-lab worker` (one Celery worker) and
`resnet-lab db upgrade` (the database schema; serve and worker run it as they start)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys
import threading
from pathlib import Path

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _set_home(home: str | None) -> None:
    if home:
        os.environ["RESNET_LAB_HOME"] = str(Path(home).expanduser().resolve())
    from core.config import get_settings

    get_settings.cache_clear()


def worker_command(name: str, loglevel: str = "INFO") -> list[str]:
    from core.queue import QUEUE, WORKER_APP

    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        WORKER_APP,
        "worker",
        "--pool",
        "solo",  # one run at a time, in the worker's own process (CUDA and SIGKILL safe)
        "--concurrency",
        "1",
        "--queues",
        QUEUE,
        "--hostname",
        name,
        "--loglevel",
        loglevel,
        "--without-gossip",
        "--without-mingle",
    ]


def serve(args: argparse.Namespace) -> int:
    _set_home(args.home)
    from core.config import get_settings

    settings = get_settings()
    if not _is_loopback(args.host) and not settings.api_token:
        print(
            f"error: --host {args.host} is reachable from other machines; set API_TOKEN "
            "first (every state-changing request will need it)",
            file=sys.stderr,
        )
        return 2
    settings.ensure_dirs()
    _upgrade_database()
    from core.crashes import record_crash
    from core.supervisor import Supervisor, share_threads

    # Each local worker gets its share of the cores: N workers each using every core would
    # oversubscribe them (bench/worker_threads.py measures it).
    threads = str(share_threads(args.workers))

    def env_for(_i: int) -> dict[str, str]:
        env = os.environ.copy()
        env.setdefault("OMP_NUM_THREADS", threads)
        return env

    workers = Supervisor(
        [worker_command(f"local{i}@%h", args.loglevel.upper()) for i in range(args.workers)],
        env_for,
        grace=settings.stop_grace,
        on_death=record_crash,
    )
    workers.start()
    threading.Thread(target=workers.watch, name="supervisor", daemon=True).start()
    import uvicorn

    print(
        f"ResNet Lab on http://{args.host}:{args.port}  (home {settings.home_dir}, "
        f"{args.workers} local worker{'s' if args.workers != 1 else ''}, broker "
        f"{'embedded SQLite' if settings.uses_embedded_broker else settings.broker_url})",
        flush=True,
    )

    def stop_on_sigterm(_signum, _frame) -> None:
        raise SystemExit(0)

    # uvicorn shuts down gracefully on SIGTERM, restores this handler and raises the signal
    # again: the SystemExit then runs the bounded worker stop below instead of dying at once.
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        uvicorn.run(
            "app.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            log_level=args.loglevel.lower(),
            # Open event streams must not hold the shutdown.
            timeout_graceful_shutdown=max(int(settings.stop_grace), 1),
        )
    except KeyboardInterrupt:
        pass
    finally:
        # Another SIGTERM or Ctrl-C while the workers stop: kill them now.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: workers.hurry.set())
        workers.stop()
    return 0


def worker(args: argparse.Namespace) -> int:
    if args.gpu is not None:
        # Before torch is imported anywhere in this process.
        os.environ["CUDA_VISIBLE_DEVICES"] = str(args.gpu)
    _set_home(args.home)
    from core.config import get_settings
    from core.crashes import record_crash
    from core.supervisor import Supervisor, run_until_signalled, share_threads

    _upgrade_database()
    base = args.name or (f"gpu{args.gpu}@%h" if args.gpu is not None else "worker@%h")
    node, _, host = base.partition("@")
    # --slots K: K worker processes on one device (CUDA MPS, when its daemon runs, lets their
    # kernels overlap), each with its share of the CPU cores.
    names = (
        [base] if args.slots == 1 else [f"{node}-slot{i}@{host or '%h'}" for i in range(args.slots)]
    )
    threads = str(share_threads(args.slots))

    def env_for(_i: int) -> dict[str, str]:
        env = os.environ.copy()
        if args.slots > 1:
            env.setdefault("OMP_NUM_THREADS", threads)
        env["RESNET_LAB_PACK"] = str(args.pack)  # read by core.config: runs trained together
        return env

    # Each Celery worker runs as a child: one that dies in native code or gives up a stalled
    # run is replaced, and stopping is bounded (core.supervisor).
    supervisor = Supervisor(
        [worker_command(name, args.loglevel.upper()) for name in names],
        env_for,
        grace=get_settings().stop_grace,
        on_death=record_crash,
    )
    return run_until_signalled(supervisor)


def _upgrade_database() -> None:
    from core import migrate
    from core.config import get_settings

    migrate.upgrade(get_settings().resolved_database_url)


def db(args: argparse.Namespace) -> int:
    _set_home(args.home)
    from core import migrate
    from core.config import get_settings

    url = get_settings().resolved_database_url
    if args.action == "upgrade":
        migrate.upgrade(url)
    print(f"{migrate.current(url) or 'no revision'} (newest: {migrate.head()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resnet-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="start the web app and local workers")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--workers", type=int, default=1, help="local worker processes (0 = web only; default 1)"
    )
    p.add_argument("--home", help="folder for the database, checkpoints and datasets")
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=serve)

    p = sub.add_parser(
        "worker", help="start one Celery worker (one run at a time), replaced if it dies"
    )
    p.add_argument("--gpu", type=int, help="pin to this GPU (sets CUDA_VISIBLE_DEVICES)")
    p.add_argument("--home", help="folder for the database, checkpoints and datasets")
    p.add_argument("--name", help="Celery node name (default gpuN@host or worker@host)")
    p.add_argument(
        "--slots", type=int, default=1, help="worker processes sharing the device (default 1)"
    )
    p.add_argument(
        "--pack",
        type=int,
        default=1,
        help="train up to this many compatible queued runs together as one packed network "
        "(same dataset, width, batch size, precision; default 1)",
    )
    p.add_argument("--loglevel", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=worker)

    p = sub.add_parser("db", help="the database schema: upgrade it, or show its revision")
    p.add_argument("action", choices=["upgrade", "current"])
    p.add_argument("--home", help="folder for the database, checkpoints and datasets")
    p.set_defaults(func=db)

    # The REST client's commands (runs, submit, grid, wait, cancel, retry, export).
    from resnet_lab.cli import add_commands

    add_commands(sub, parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", 0) is not None and getattr(args, "workers", 0) < 0:
        parser.error("--workers: must be 0 or more")
    if getattr(args, "port", 1) is not None and not 0 < getattr(args, "port", 1) < 65536:
        parser.error("--port: must be in 1..65535")
    if getattr(args, "gpu", None) is not None and args.gpu < 0:
        parser.error("--gpu: must be 0 or more")
    for flag in ("slots", "pack"):
        if not 1 <= getattr(args, flag, 1) <= 64:
            parser.error(f"--{flag}: must be in 1..64")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
