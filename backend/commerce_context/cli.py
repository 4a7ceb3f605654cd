"""The `commerce-context` command (also `python -m commerce_context`).

    commerce-context serve          run the service with settings from the environment: uvicorn
                                    with uvloop and httptools, --workers N (CC_WEB_CONCURRENCY),
                                    graceful stop on SIGTERM (docs/operations.md)
    commerce-context demo           run the embedded demo: emulator, GraphQL, seed data, service
    commerce-context check-config   validate the settings and print them (secrets hidden)
    commerce-context worker         run job workers without the web server
    commerce-context jobs ...       list, show, retry or cancel jobs (see operations.py)
    commerce-context audit ...      the audit trail of a ticket, order, customer or request
    commerce-context links ...      print an order deep link, or revoke a signed link
    commerce-context sync customers --since DATE
                                    enqueue a Zendesk user sync of customers (resumable)

Configuration errors name each setting by its environment variable and exit with status 2;
`check-config` lists every error at once, then warnings that do not fail it (unknown CC_*
variables, the Zendesk sidebar not configured, ...). `demo` listens on --port, else CC_PORT,
else 8000 (and --host, else CC_HOST, else 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import uvicorn
from starlette.types import ASGIApp

from . import links, logs, operations
from .app import create_app
from .exceptions import CommerceContextError, ConfigError
from .settings import Settings, check_settings, load_settings, setting_hint, setting_names

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from . import zendesk_sync  # the `sync` command

    parser = argparse.ArgumentParser(prog="commerce-context", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the service with settings from the environment"),
        ("demo", "run the embedded demo (no accounts needed)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--host", help="address to bind (default: CC_HOST or 127.0.0.1)")
        command.add_argument("--port", type=int, help="port to bind (default: CC_PORT or 8000)")
        if name == "serve":
            command.add_argument(
                "--workers",
                type=int,
                help="server processes (default: CC_WEB_CONCURRENCY or 1; see docs/operations.md)",
            )
    commands.add_parser("check-config", help="validate the settings and print them")
    operations.add_commands(commands)
    links.add_commands(commands)
    zendesk_sync.add_commands(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            return check_config()
        if args.command in operations.COMMANDS:
            return operations.run(args)
        if args.command in links.COMMANDS:
            return links.run(args)
        if args.command in zendesk_sync.COMMANDS:
            return zendesk_sync.run(args)
        if args.command == "serve":
            return serve(load_settings(**_overrides(args)))
        return asyncio.run(run_demo(args.host, args.port))
    except ConfigError as exc:
        print(f"commerce-context: {exc.message}", file=sys.stderr)
        return 2
    except CommerceContextError as exc:
        print(f"commerce-context: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    pairs = (
        ("host", args.host),
        ("port", args.port),
        ("web_concurrency", getattr(args, "workers", None)),
    )
    return {k: v for k, v in pairs if v is not None}


# A warning check looks at valid settings and returns one line per thing worth fixing; warnings
# never fail check-config. Add a check by appending it to WARNING_CHECKS (end of this module).
WarningCheck = Callable[[Settings], list[str]]


def check_config(environ: Mapping[str, str] | None = None) -> int:
    """Every error (stderr, exit 2) and every warning at once; the settings if they are valid
    (secrets hidden), then the warnings (stdout, exit 0)."""
    settings, errors = check_settings()
    warnings = unknown_variables(os.environ if environ is None else environ)
    if settings is not None:
        for check in WARNING_CHECKS:
            warnings.extend(check(settings))
    if settings is None:
        print(f"commerce-context: {len(errors)} configuration errors:", file=sys.stderr)
        for line in errors:
            print(f"error: {line}", file=sys.stderr)
        for line in warnings:
            print(f"warning: {line}", file=sys.stderr)
        return 2
    print("configuration OK" + (f" ({len(warnings)} warnings)" if warnings else ""))
    for name, value in settings.model_dump(exclude={"mappings"}).items():
        print(f"  {name} = {value}")
    print(f"  stores = {', '.join(settings.mappings.stores) or '(none)'}")
    for line in warnings:
        print(f"warning: {line}")
    return 0


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A CC_* environment variable that is no setting is ignored: usually a typo."""
    known = set(setting_names())
    return [
        f"{name} is set but is not a setting, so it is ignored{setting_hint(name)}"
        for name in sorted(environ)
        if name.upper().startswith("CC_") and name.upper() not in known
    ]


def zendesk_not_configured(settings: Settings) -> list[str]:
    if settings.zendesk_enabled:
        return []
    return [
        "the Zendesk sidebar is not configured, so /zendesk/sidebar answers 404: set "
        "CC_ZENDESK_SUBDOMAIN, CC_ZENDESK_INSTALLATION_ID, CC_ZENDESK_APP_ID (or "
        "CC_ZENDESK_PUBLIC_KEY) and CC_SESSION_SECRET (see docs/configuration.md)"
    ]


def store_mapping_warnings(settings: Settings) -> list[str]:
    """Store mappings that leave Zendesk brands unscoped (settings cannot list the brands
    themselves: a brand mapped to no store sees the orders and carts of every store)."""
    stores = settings.mappings.stores
    if not stores or not settings.zendesk_enabled:
        return []
    unmapped = [key for key, scope in stores.items() if not scope.zendesk_brands]
    if len(unmapped) == len(stores):
        return [
            "stores are configured but no Zendesk brand is mapped to one (zendesk_brands in "
            "CC_CONFIG_FILE): every ticket sees the orders and carts of all stores"
        ]
    return [
        f"store {key!r} has no Zendesk brand (zendesk_brands in CC_CONFIG_FILE); tickets of "
        "brands mapped to no store see the orders and carts of all stores"
        for key in unmapped
    ]


def serve(settings: Settings) -> int:
    """The production server: uvicorn with uvloop and httptools (its `standard` extras),
    CC_WEB_CONCURRENCY processes, and a graceful stop on SIGTERM or SIGINT: no new
    connections, in-flight requests get CC_SHUTDOWN_TIMEOUT seconds, then the lifespan stops
    the in-process workers, whose running jobs get a grace period and are otherwise handed back
    to the queue for another instance (docs/operations.md)."""
    if settings.metrics_port is not None and settings.web_concurrency > 1:
        raise ConfigError(
            "CC_METRICS_PORT cannot be shared by several server processes: run one process per "
            "instance (CC_WEB_CONCURRENCY=1) and scale by instances, or use CC_METRICS_TOKEN"
        )
    logs.configure(settings.log_level, settings.log_format)
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": logs.log_config(settings.log_level, settings.log_format),
        "access_log": False,  # metrics.RequestObserver writes one line per request instead
        "proxy_headers": True,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        "loop": "auto",  # uvloop when installed (it is: uvicorn[standard])
        "http": "auto",  # httptools likewise
        "server_header": False,
    }
    if settings.web_concurrency > 1:
        # Each process builds its own app from the environment (the settings are the same).
        uvicorn.run(
            "commerce_context.cli:app_from_environment",
            factory=True,
            workers=settings.web_concurrency,
            **options,  # type: ignore[arg-type]
        )
        return 0
    app = _frozen(create_app(settings))
    uvicorn.run(app, **options)  # type: ignore[arg-type]
    return 0


def app_from_environment() -> ASGIApp:
    """The app of one server process when CC_WEB_CONCURRENCY > 1."""
    return _frozen(create_app(load_settings()))


def _frozen(app: ASGIApp) -> ASGIApp:
    # Everything imported so far lives as long as the process: keep the garbage collector
    # from walking it again and again (full collections paused requests for 20-50 ms).
    gc.freeze()
    return app


def demo_address(
    host: str | None, port: int | None, environ: Mapping[str, str] | None = None
) -> tuple[str, int]:
    """--host/--port, else CC_HOST/CC_PORT, else 127.0.0.1:8000 (`make run PORT=8001`)."""
    environ = os.environ if environ is None else environ
    host = host or environ.get("CC_HOST", "").strip() or "127.0.0.1"
    if port is None:
        text = environ.get("CC_PORT", "").strip() or "8000"
        if not text.isdigit():
            raise ConfigError(f"invalid setting CC_PORT: {text!r} is not a port number")
        port = int(text)
    if not 1 <= port <= 65535:
        raise ConfigError(f"invalid setting CC_PORT: {port} is not a port number (1-65535)")
    return host, port


async def run_demo(host: str | None, port: int | None) -> int:
    try:
        from .demo_sync import demo_account
        from .emulator.harness import (
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            build_demo,
            demo_settings,
            demo_tickets,
            running,
        )
        from .storefront import demo_tidio
    except ImportError:  # the production image leaves the stand-ins out
        raise ConfigError(
            "this installation has no demo (the production image leaves the emulator out): "
            "run `make run` in a source checkout, or build the image's demo target"
        ) from None
    from .demo import DemoZendesk

    host, port = demo_address(host, port)
    logs.configure("info")
    print("Starting the commercetools emulator and seeding demo data ...", flush=True)
    async with (
        running() as harness,
        demo_tidio(harness, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET) as (shop, fake_tidio, tidio),
        demo_account(harness, demo_tickets(harness.demo)) as (account, zendesk_sync),
    ):
        zendesk = DemoZendesk.generate()
        public = f"http://{host}:{port}"
        settings = demo_settings(
            harness, zendesk, host=host, port=port, public_url=public, **tidio, **zendesk_sync
        )
        await account.start(settings)  # demo customers -> Zendesk users, ticket routing fields
        fake_tidio.webhook_url = f"{public}/tidio/webhooks"  # the fake's contact webhooks
        demo = replace(build_demo(harness, zendesk), shop=shop, zendesk_account=account)
        app = create_app(settings, demo=demo)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=logs.log_config("info"),
        )
        server = uvicorn.Server(config)
        print(
            f"\n  commerce-context demo is running: open http://{settings.host}:{settings.port}/"
            f"\n  a simulated Zendesk ticket with the live sidebar: "
            f"http://{settings.host}:{settings.port}/demo/zendesk?ticket=1"
            f"\n  a storefront with the Tidio snippet: http://{settings.host}:{settings.port}"
            f"/demo/shop\n  the simulated Tidio agent view: {shop.tidio_url}/agent"
            f"\n  the simulated Zendesk account (users, ticket fields, ship an order): "
            f"http://{settings.host}:{settings.port}/demo/zendesk/account"
            f"\n  (commercetools emulator + GraphQL at {harness.api_url}; Ctrl-C stops all)\n",
            flush=True,
        )
        if settings.admin_token is not None:
            print(
                f"  admin page (jobs, dead jobs, audit trail): "
                f"http://{settings.host}:{settings.port}/admin\n"
                f"  (any user name; password {settings.admin_token.get_secret_value()})\n",
                flush=True,
            )
        await server.serve()
    return 0


WARNING_CHECKS: list[WarningCheck] = [zendesk_not_configured, store_mapping_warnings]
