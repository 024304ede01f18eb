"""``anachron server [TARGET]...``: the JSON API, the web UI and the daemon's loop in one process.

It binds 127.0.0.1:8080 by default. A non-loopback address needs ``ANACHRON_API_TOKEN`` (every request
must then carry it) unless ``--insecure`` says the network is trusted. SIGTERM or Ctrl-C stops it cleanly:
requests in flight finish, the daemon loop stops, runs in flight are handed back (leases released), exit 0.

Start-up order: the port is bound first — an address in use is one ``error:`` line and exit 2, before any
workflow is loaded, any storage opened or any run led — then the repository is built and the daemon loop
starts with the app. Requests must name the server in ``Host`` (``--allowed-host``; see ``api.auth``), and
the server's own secrets are taken out of the environment its runs inherit (see ``anachron.runenv``).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import sys
from typing import Annotated, Optional

import typer

from ..limits import MAX_BODY_BYTES
from ..runenv import scrub_environ
from . import target as targets
from .common import CliError, DbOption, ModuleOption, Positionals, example, note, usage
from .config import load_config
from .daemon import log_to_stderr

TOKEN_ENV = "ANACHRON_API_TOKEN"
TOKEN_NAME_ENV = "ANACHRON_API_TOKEN_NAME"  # who the token's holder is recorded as (a backfill's created_by)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server(
    positionals: Positionals = None, module: ModuleOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on.")] = 8080,
    insecure: Annotated[bool, typer.Option(
        "--insecure", help=f"Listen on a non-loopback address without {TOKEN_ENV} (a trusted network only).")] = False,
    scan: Annotated[float, typer.Option("--scan", metavar="SECONDS", min=0.05,
                                        help="How often the daemon loop looks for work nobody leads.")] = 1.0,
    allowed_host: Annotated[Optional[list[str]], typer.Option(
        "--allowed-host", metavar="NAME",
        help="A Host name the server answers to, besides loopback names and IP addresses (repeat it; '*': any, "
             "for a proxy that checks Host itself).")] = None,
    max_body_bytes: Annotated[int, typer.Option("--max-body-bytes", min=1024,
                                                help="The largest request body accepted (413 beyond).")]
    = MAX_BODY_BYTES,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log the engine's details too.")] = False,
    db: DbOption = None,
) -> None:
    """Serve the HTTP API (/api/v1, docs at /docs), the web UI (/) and the daemon's loop.

    TARGET (Python files, YAML flows or folders of them, or -m MODULE) defines the workflows.
    """
    token = os.environ.get(TOKEN_ENV) or None
    if not is_loopback(host) and token is None and not insecure:
        raise CliError(f"--host {host}: refusing to listen on a non-loopback address without {TOKEN_ENV} set "
                       "(set it, or pass --insecure on a trusted network)")
    try:
        import uvicorn

        from ..api import create_app
        from ..api.auth import DEFAULT_TOKEN_NAME
    except ImportError as exc:  # pragma: no cover - the server extra is a core dependency of the CLI's install
        raise CliError(f"anachron server needs FastAPI and uvicorn ({exc.name} is missing): "
                       "pip install 'anachron[server]'") from None
    config = load_config()
    chosen = targets.pick_many(positionals, module, config)
    hosts = [*([] if host in WILDCARDS else [host]), *(allowed_host or [])]
    token_name = os.environ.get(TOKEN_NAME_ENV) or DEFAULT_TOKEN_NAME
    listener = bind(host, port)  # before anything is loaded or led: a port in use changes nothing
    try:
        with log_to_stderr(verbose):
            with targets.repository_of(chosen, db, config) as repo:
                scrub_environ()  # read: the token, the database URL; runs started from here on see neither
                app = create_app(repo, token=token, scan_seconds=scan, allowed_hosts=hosts,
                                 max_body_bytes=max_body_bytes, token_name=token_name)
                server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                                       timeout_graceful_shutdown=5))
                shown = f"[{host}]" if ":" in host else host
                logging.getLogger("anachron.server").info(
                    "serving http://%s:%d (API /api/v1, docs /docs)%s", shown, listener.getsockname()[1],
                    "" if token is None else f"; {TOKEN_ENV} required")
                try:
                    server.run(sockets=[listener])
                except KeyboardInterrupt:
                    pass
                note("server stopped: leases released")
    finally:
        listener.close()
    sys.stdout.flush()
    raise typer.Exit(0)


WILDCARDS = ("0.0.0.0", "::", "")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``; ``CliError`` (exit 2) when it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise CliError(f"--host {host}: cannot resolve it ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise CliError(f"--port {port}: could not listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(False)
    return sock


EPILOG = example("anachron server flows.py", "anachron server flows/ --port 9000 --db postgresql+psycopg://db/prod",
                 f"{TOKEN_ENV}=s3cret anachron server -m mypkg.flows --host 0.0.0.0")
USAGE_LINE = usage("[TARGET]...")
