"""The `insights` command."""

from __future__ import annotations

import socket
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError

from insights.cli_apps import apps_app
from insights.cli_dlq import dlq_app
from insights.cli_import import import_file
from insights.cli_keys import keys_app, webhooks_app
from insights.cli_options import DataDir, embedded_settings, err, out
from insights.cli_people import audit_app, members_app
from insights.cli_sources import sources_app
from insights.cli_users import users_app
from insights.composition.distributed import PROCESSES
from insights.composition.embedded import build_embedded
from insights.embedded import DataDirBusy, create_app, hold_data_dir
from insights_common.auth import MissingMasterKey

app = typer.Typer(
    name="insights",
    help="User Insights: see every notification a messaging user received and how they responded.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(keys_app, name="keys")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(sources_app, name="sources")
app.add_typer(dlq_app, name="dlq")
app.add_typer(members_app, name="members")
app.add_typer(audit_app, name="audit")
app.add_typer(apps_app, name="apps")
app.add_typer(users_app, name="users")


Service = StrEnum(  # type: ignore[misc]  # the process kinds of the composition root
    "Service", {name: name for name in PROCESSES}
)


@app.command()
def dev(
    port: Annotated[int | None, typer.Option(help="HTTP port [default 8000]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface [default 127.0.0.1]")] = None,
    data_dir: DataDir = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Load a demo app with users and messages.")
    ] = False,
) -> None:
    """Run the whole product in one process on embedded storage: the API and the dashboard."""
    import uvicorn

    from insights.demo import load_demo
    from insights.tuning import freeze_startup_objects, server_config, tune_garbage_collector
    from insights_common.http.guard import HttpSettings
    from insights_common.tracing import start_tracing

    tune_garbage_collector()
    settings = embedded_settings(data_dir, port=port, host=host)
    _check_port_free(settings.host, settings.port)
    try:
        hold_data_dir(settings.data_dir)  # until this process ends
    except DataDirBusy as error:
        err.print(f"[red]error:[/] {error}; is another `insights dev` serving it?")
        raise typer.Exit(2) from None
    try:
        tracer_provider = start_tracing("embedded")
    except ValueError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    embedded = build_embedded(settings, tracer_provider=tracer_provider)

    async def announce(ready: object) -> None:
        base = f"http://{settings.host}:{settings.port}"
        if demo:
            access = await load_demo(embedded, data_dir=settings.data_dir)
            key = access.key
            out.print(
                f"\n[bold green]Demo app 'demo' is ready.[/] Open the dashboard at {base} and "
                f"sign in to app 'demo' as {access.email} with the password (shown once):",
                soft_wrap=True,
            )
            out.print(access.password, soft_wrap=True, highlight=False)
            out.print("\nPrograms call the API with this key (shown once):", soft_wrap=True)
            out.print(key, soft_wrap=True, highlight=False)
            for path in ("users?q=alex", "users/alex", "users/alex/messages"):
                out.print(
                    f'  curl -H "Authorization: Bearer {key}" "{base}/api/v1/{path}"',
                    soft_wrap=True,
                    highlight=False,
                )
        out.print(
            f"\nUser Insights is serving {base} (data in {settings.data_dir.resolve()})",
            soft_wrap=True,
        )
        freeze_startup_objects()

    try:
        http = HttpSettings()
    except ValidationError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    # Absolute URLs name this address unless PUBLIC_BASE_URL gives the one users reach.
    listening = f"[{settings.host}]" if ":" in settings.host else settings.host
    origin = f"http://{listening}:{settings.port}"
    app = create_app(
        embedded, after_start=announce, http=http, origin=origin, tracer_provider=tracer_provider
    )
    server = uvicorn.Server(
        server_config(app, http, host=settings.host, port=settings.port, log_level="warning")
    )
    try:
        server.run()
    finally:
        if tracer_provider is not None:
            tracer_provider.shutdown()  # sends the spans still queued


@app.command()
def serve(
    service: Annotated[Service, typer.Argument(help="Which service this process runs.")],
    port: Annotated[int | None, typer.Option(help="HTTP port [default from its settings]")] = None,
    host: Annotated[str | None, typer.Option(help="Interface [default from its settings]")] = None,
    startup_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for Kafka, OpenSearch and PostgreSQL.")
    ] = 60.0,
) -> None:
    """Run one service of the distributed mode, configured from the environment.

    import, ingest and query serve their part of the API; projector writes the events into
    OpenSearch (it serves only /healthz, /readyz and /metrics). nginx in front (deploy/nginx)
    gives the dashboard and the API one origin. Kafka, OpenSearch and PostgreSQL come from
    KAFKA_BOOTSTRAP_SERVERS, OPENSEARCH_URL and POSTGRES_DSN; every process needs the same
    INSIGHTS_MASTER_KEY.
    """

    from insights import logs  # noqa: PLC0415
    from insights.distributed import serve as serve_process  # noqa: PLC0415
    from insights.tuning import run  # noqa: PLC0415

    try:
        logs.configure(service.value, chosen=logs.log_format())
    except ValueError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    try:
        run(serve_process(service.value, host=host, port=port, startup_limit=startup_timeout))
    except (MissingMasterKey, ValidationError) as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from None
    except RuntimeError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None


def _check_port_free(host: str, port: int) -> None:
    """Fail before loading anything when the port is taken, with the way out."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            err.print(
                f"[red]error:[/] cannot listen on {host}:{port} ({exc.strerror}); "
                "stop what uses it or choose another port with --port"
            )
            raise typer.Exit(2) from None


app.command("import")(import_file)


def main() -> None:
    app()
