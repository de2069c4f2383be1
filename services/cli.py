"""The ``dmask`` command line.

    dmask serve [--host H] [--port P] [--workers N]   run the API (embedded: everything in one process)
    dmask worker [--concurrency N]         run a masking worker (Celery when a broker is configured)
    dmask keys create --client NAME --scope S [--scope S ...]   (the key is the LAST line printed)
    dmask keys list | dmask keys revoke KEY_ID
    dmask users create NAME --scope S [--name "Display Name"] [--password-stdin] | list | disable NAME
    dmask db upgrade                       apply database migrations
    dmask audit verify [EXPORT_FILE]       check the audit hash chain, or an export offline (exit 1 if broken)
    dmask beat                             Celery beat for the retention schedule
    dmask storage sweep [--grace-s S]      delete orphaned objects (audited), print a JSON report
    dmask mask ... / dmask landmarks ...   model tools (see models/)

Model commands are imported only when used, so the service starts without loading torch.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from services.settings import Settings, get_settings

DELEGATED = {
    "mask": ("workers.mask_cli", "mask_command"),
    "landmarks": ("models.perception.draw_cli", "landmarks_command"),
}


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _ensure_schema(settings: Settings) -> None:
    if settings.migrate_on_start:
        from services.migrate import upgrade

        upgrade(settings)


def _cli_ctx() -> object:
    from services.audit.service import AuditContext

    return AuditContext(client_id=None, key_id=None, source_ip=None, request_id=f"cli:{_os_user()}")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid())


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    host = args.host or settings.host
    port = args.port if args.port is not None else settings.port
    workers = args.workers or 1
    if workers > 1 and settings.embedded:
        print("error: --workers > 1 needs a broker (each process would run its own in-process worker)")
        return 2
    # uvicorn's access log prints request paths, which carry record IDs: the app logs its own,
    # with route templates only.
    uvicorn.run(
        "services.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level=settings.log_level.lower(),
        proxy_headers=True,
        timeout_graceful_shutdown=30,
    )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if settings.broker_url:
        from workers.celery_app import app

        concurrency = args.concurrency or settings.worker_concurrency
        app.worker_main(
            [
                "worker",
                "-Q",
                settings.queue_name,
                "--concurrency",
                str(concurrency),
                "--pool",
                "prefork",
                "--loglevel",
                settings.log_level.upper(),
                "-n",
                f"dmask-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ]
        )
        return 0
    from workers.inprocess import InProcessWorker

    _ensure_schema(settings)
    worker = InProcessWorker(settings)
    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.start()
    logging.getLogger("dmask.worker").info("in-process worker polling the database (no broker configured)")
    stop.wait()
    worker.stop()
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from services.auth import service as keys
    from services.db import session_scope

    _ensure_schema(settings)
    ctx = _cli_ctx()
    if args.keys_cmd == "create":
        try:
            with session_scope(settings) as session:
                row, key = keys.create_key(session, args.client, args.scope, ctx)  # type: ignore[arg-type]
        except keys.KeyManagementError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"key id: {row.id}  client: {row.client_id}  scopes: {' '.join(row.scopes)}")
        print("store this key now; it is not shown again:")
        print(key)
        return 0
    if args.keys_cmd == "list":
        with session_scope(settings) as session:
            rows = keys.list_keys(session)
            for r in rows:
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(f"{r.id}\t{r.client_id}\t{','.join(r.scopes)}\t{r.created_at:%Y-%m-%d %H:%M}\t{state}")
        return 0
    if args.keys_cmd == "revoke":
        try:
            with session_scope(settings) as session:
                keys.revoke_key(session, args.key_id, ctx)  # type: ignore[arg-type]
        except keys.KeyManagementError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"revoked {args.key_id}")
        return 0
    return 2


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


def cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    """Local users: people who sign in to /ui with a password when no identity provider is set."""
    from services.auth import passwords
    from services.auth.service import KeyManagementError
    from services.db import session_scope

    _ensure_schema(settings)
    ctx = _cli_ctx()
    try:
        if args.users_cmd == "create":
            password = _read_password(args.password_stdin)
            with session_scope(settings) as session:
                row = passwords.create_user(
                    session,
                    args.username,
                    password,
                    args.name or args.username,
                    args.scope,
                    ctx,  # type: ignore[arg-type]
                )
            print(f"user {row.username} ({row.display_name}) created with scopes {' '.join(row.scopes)}")
        elif args.users_cmd == "disable":
            with session_scope(settings) as session:
                passwords.disable_user(session, args.username, ctx)  # type: ignore[arg-type]
            print(f"disabled {args.username}")
        else:
            with session_scope(settings) as session:
                for u in passwords.list_users(session):
                    state = "disabled" if u.disabled_at else "active"
                    print(f"{u.username}\t{u.display_name}\t{','.join(u.scopes)}\t{state}")
    except (KeyManagementError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from services.migrate import upgrade

    upgrade(settings)
    print("database at head")
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "export_file", None):  # offline: re-check an export file, no database needed
        from services.reports.verify import verify_export_command

        return verify_export_command([args.export_file])
    from services.audit import service as audit
    from services.db import get_sessionmaker

    _ensure_schema(settings)
    with get_sessionmaker(settings)() as session:
        result = audit.verify(session)
    print(json.dumps(result.as_dict()))
    return 0 if result.ok else 1


def cmd_beat(args: argparse.Namespace, settings: Settings) -> int:
    from workers.retention import beat_main

    return beat_main(settings)


def cmd_storage(args: argparse.Namespace, settings: Settings) -> int:
    from services.storage import get_store
    from services.storage.sweeper import sweep_orphans

    _ensure_schema(settings)
    report = sweep_orphans(settings, get_store(settings), grace_s=args.grace_s, limit=args.limit)
    print(json.dumps(report.as_dict(), sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dmask", description="DigitalMask face-privacy ingestion service")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the API")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument(
        "--workers", type=int, help="uvicorn processes on one port (distributed mode; rate limit per process)"
    )
    s.set_defaults(fn=cmd_serve)

    w = sub.add_parser("worker", help="run a masking worker")
    w.add_argument("--concurrency", type=int)
    w.set_defaults(fn=cmd_worker)

    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="keys_cmd", required=True)
    kc = ksub.add_parser("create", help="create a key (printed once, as the last line)")
    kc.add_argument("--client", required=True)
    kc.add_argument(
        "--scope",
        action="append",
        required=True,
        help="media:write, media:read, audit:read, metrics or admin (repeatable)",
    )
    ksub.add_parser("list", help="list keys (never the keys themselves)")
    kr = ksub.add_parser("revoke", help="revoke a key")
    kr.add_argument("key_id")
    k.set_defaults(fn=cmd_keys)

    u = sub.add_parser("users", help="local sign-in for /ui when no identity provider is configured")
    usub = u.add_subparsers(dest="users_cmd", required=True)
    uc = usub.add_parser("create", help="create a user (the password is asked for, or read from stdin)")
    uc.add_argument("username")
    uc.add_argument("--name", help="display name shown in the audit log (default: the username)")
    uc.add_argument("--scope", action="append", required=True, help="as for keys (repeatable), e.g. admin")
    uc.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    usub.add_parser("list", help="list users")
    ud = usub.add_parser("disable", help="disable a user (their sessions end at once)")
    ud.add_argument("username")
    u.set_defaults(fn=cmd_users)

    d = sub.add_parser("db", help="database maintenance")
    dsub = d.add_subparsers(dest="db_cmd", required=True)
    dsub.add_parser("upgrade", help="apply migrations")
    d.set_defaults(fn=cmd_db)

    a = sub.add_parser("audit", help="audit log")
    asub = a.add_subparsers(dest="audit_cmd", required=True)
    av = asub.add_parser("verify", help="verify the hash chain online, or an export file offline")
    av.add_argument("export_file", nargs="?", help="audit export (CSV/NDJSON) to re-check offline")
    a.set_defaults(fn=cmd_audit)

    b = sub.add_parser("beat", help="Celery beat: runs the retention schedule (one per deployment)")
    b.set_defaults(fn=cmd_beat)

    st = sub.add_parser("storage", help="object storage maintenance")
    stsub = st.add_subparsers(dest="storage_cmd", required=True)
    sw = stsub.add_parser(
        "sweep", help="delete objects no database row accounts for (audited), print a JSON report"
    )
    sw.add_argument(
        "--grace-s", type=float, default=None, help="leave younger objects alone (default: orphan_grace_s)"
    )
    sw.add_argument("--limit", type=int, default=10_000, help="most deletions per bucket")
    st.set_defaults(fn=cmd_storage)

    for name in DELEGATED:
        sub.add_parser(name, help=f"model tool: dmask {name} --help", add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        module, attr = DELEGATED[argv[0]]
        fn: Callable[[list[str]], int | None] = getattr(importlib.import_module(module), attr)
        return int(fn(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    settings = get_settings()
    _setup_logging(settings)
    code: int = args.fn(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
