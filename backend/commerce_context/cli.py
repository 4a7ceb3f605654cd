"""The `commerce-context` command (also `python -m commerce_context`).

    commerce-context serve          run the service with settings from the environment
    commerce-context demo           run the embedded demo: emulator, GraphQL, seed data, service
    commerce-context check-config   validate the settings and print them (secrets hidden)
    commerce-context worker         run job workers without the web server
    commerce-context jobs ...       list, show, retry or cancel jobs (see operations.py)
    commerce-context audit ...      the audit trail of a ticket, order, customer or request

A configuration error prints one line naming the setting and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence

import uvicorn

from . import logs, operations
from .app import create_app
from .exceptions import CommerceContextError, ConfigError
from .settings import Settings, load_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="commerce-context", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("serve", "run the service with settings from the environment"),
        ("demo", "run the embedded demo (no accounts needed)"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--host", help="address to bind (default: CC_HOST or 127.0.0.1)")
        command.add_argument("--port", type=int, help="port to bind (default: CC_PORT or 8000)")
    commands.add_parser("check-config", help="validate the settings and print them")
    operations.add_commands(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "check-config":
            return check_config()
        if args.command in operations.COMMANDS:
            return operations.run(args)
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
    return {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}


def check_config() -> int:
    settings = load_settings()
    print("configuration OK")
    for name, value in settings.model_dump(exclude={"mappings"}).items():
        print(f"  {name} = {value}")
    print(f"  stores = {', '.join(settings.mappings.stores) or '(none)'}")
    return 0


def serve(settings: Settings) -> int:
    logs.configure(settings.log_level)
    app = create_app(settings)
    # Everything imported so far lives as long as the process: keep the garbage collector
    # from walking it again and again (full collections paused requests for 20-50 ms).
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=logs.log_config(settings.log_level),
        proxy_headers=True,
    )
    return 0


async def run_demo(host: str | None, port: int | None) -> int:
    from .demo import DemoZendesk
    from .emulator.harness import build_demo, demo_settings, running

    logs.configure("info")
    print("Starting the commercetools emulator and seeding demo data ...", flush=True)
    async with running() as harness:
        zendesk = DemoZendesk.generate()
        settings = demo_settings(harness, zendesk, host=host or "127.0.0.1", port=port or 8000)
        app = create_app(settings, demo=build_demo(harness, zendesk))
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
            f"\n  (commercetools emulator + GraphQL at {harness.api_url}; Ctrl-C stops all)\n",
            flush=True,
        )
        await server.serve()
    return 0
