"""``pairflow dashboard``: serve the live Panel dashboard from the store or from Kafka."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from app.console import run_reporting_errors
from app.options import Kafka, config_default
from pairflow.errors import ConfigError


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _auth_file(spec: str) -> str:
    user, sep, password = spec.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--basic-auth must be USER:PASS")
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", prefix="pairflow-auth-",
                                         delete=False, encoding="utf-8")
    with handle:
        json.dump({user: password}, handle)
    os.chmod(handle.name, 0o600)
    return handle.name


def serve(
    store: Path | None = None,
    kafka: str | None = None,
    host: str = "127.0.0.1",
    port: int = 5006,
    basic_auth: str | None = None,
    kafka_prefix: str = config_default("kafka_prefix"),
    history: int = 3000,
) -> None:
    """Serve the dashboard until interrupted; prints its URL first.

    Raises:
        ConfigError: conflicting or malformed options.
    """
    if store is not None and kafka is not None:
        raise ConfigError("give --store or --kafka, not both")
    if store is None and kafka is None:
        raise ConfigError("give --store PATH (SQLite store) or --kafka BOOTSTRAP")
    if store is not None and not Path(store).parent.is_dir():
        raise ConfigError(f"store directory {Path(store).parent} does not exist")
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")
    from panel.io.server import get_server

    from dashboard.app import LOGIN_TEMPLATE, create_page
    from dashboard.feed import FeedSettings, get_feed

    settings = FeedSettings(store=Path(store) if store else None, kafka=kafka,
                            kafka_prefix=kafka_prefix, history=history)
    get_feed(settings)
    if store is not None and not Path(store).is_file():
        typer.echo(f"warning: store {store} does not exist yet; waiting for it", err=True)
    try:
        actual = port or _free_port(host)
    except OSError as error:
        raise ConfigError(f"cannot bind {host}: {error.strerror}") from error
    shown = f"[{host}]" if ":" in host else host
    origins = [f"{shown}:{actual}", f"localhost:{actual}", f"127.0.0.1:{actual}"]
    if host in ("0.0.0.0", "::"):
        origins = ["*"]
    auth = _auth_file(basic_auth) if basic_auth else None
    try:
        server = get_server(
            {"/": lambda: create_page(settings)}, port=actual, address=host, show=False,
            start=False, title="pairflow", websocket_origin=origins, basic_auth=auth,
            cookie_secret=os.urandom(32).hex() if auth else None, liveness=True,
            login_template=str(LOGIN_TEMPLATE) if auth else None,
        )
    except OSError as error:
        raise ConfigError(f"cannot listen on {host}:{actual}: {error.strerror}") from error
    typer.echo(f"pairflow dashboard on http://{shown}:{actual}/ ({settings.source})", err=False)
    sys.stdout.flush()
    try:
        server.start()
        server.io_loop.start()
    except KeyboardInterrupt:
        pass
    finally:
        if auth:
            Path(auth).unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    """Add the ``dashboard`` command to the ``pairflow`` app."""

    @app.command()
    def dashboard(
        store: Annotated[Path | None, typer.Option(help="SQLite store to read.")] = None,
        kafka: Kafka = None,
        host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 5006,
        basic_auth: Annotated[str | None, typer.Option(
            "--basic-auth", help="Require a login USER:PASS.")] = None,
        kafka_prefix: Annotated[str, typer.Option(help="Kafka topic prefix.")] = config_default(
            "kafka_prefix"),
        history: Annotated[int, typer.Option(help="Bars of history per chart.")] = 3000,
    ) -> None:
        """Serve the live dashboard (pair charts, what-if, CSV, universe scan); prints its URL."""
        serve(store=store, kafka=kafka, host=host, port=port, basic_auth=basic_auth,
              kafka_prefix=kafka_prefix, history=history)


if __name__ == "__main__":  # ``python -m app.dashboard --store PATH``: no flow imported
    _standalone = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(_standalone)
    run_reporting_errors(_standalone)
