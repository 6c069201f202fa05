"""The ``kilo-agent`` command: serve, check-config, call, status."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent import __version__

__all__ = ["main"]

DEFAULT_TARGET = "127.0.0.1:50051"

_DESCRIPTION = """\
kilo-agent: the outbound-integration sidecar. Apps call it over gRPC
(kilo.agent.v1.IntegrationAgent) instead of calling third-party APIs themselves; the agent
injects credentials and applies its policies to every call.
"""

_SERVE_HELP = """\
Run the agent until SIGTERM or SIGINT, then stop taking calls, let in-flight calls finish
within server.grace_period, and exit 0.

Config: --config PATH, else $KILO_AGENT_CONFIG, else the built-in default (listen on
127.0.0.1:50051 with the preset of every service whose usual environment variable is set,
e.g. OPENAI_API_KEY, ANTHROPIC_API_KEY, GITHUB_TOKEN, SLACK_BOT_TOKEN).
Logs go to stderr as JSON lines (--log-format text for people).
"""

_CALL_HELP = """\
Make one call through a running agent and print the status, headers, body and the call's
meta (attempts, waits, trace id). Example:

  kilo-agent call openai POST /chat/completions -H 'content-type: application/json' \\
      -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kilo-agent",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"kilo-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the agent",
        description=_SERVE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--config", metavar="PATH", help="YAML or JSON config file")
    serve.add_argument(
        "--listen",
        metavar="ADDR",
        help="override listen.grpc: HOST:PORT (port 0 picks a free one) or unix:///path.sock",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("KILO_AGENT_WORKERS", "1")),
        metavar="N",
        help="run N agent processes sharing the TCP port (SO_REUSEPORT), one per free core; "
        "each enforces 1/N of every scope: local limit (default $KILO_AGENT_WORKERS or 1)",
    )
    serve.add_argument("--worker", help=argparse.SUPPRESS)  # "i/N": set by the supervisor
    _add_log_args(serve)

    check = commands.add_parser(
        "check-config",
        help="validate a config file",
        description="Validate a config file. Exit 0 and print the resolved config with secrets "
        "redacted, or exit 1 and list every problem with its path in the file.",
    )
    check.add_argument("path", metavar="PATH", help="YAML or JSON config file")
    check.add_argument(
        "--format", choices=("yaml", "json"), default="yaml", help="output format (default yaml)"
    )

    call = commands.add_parser(
        "call",
        help="make one call through a running agent",
        description=_CALL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    call.add_argument("integration", help="configured integration name, e.g. openai")
    call.add_argument("method", help="HTTP method, e.g. GET or POST")
    call.add_argument("path", help="path relative to the integration's base_url, may carry ?query")
    call.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'K: V'",
        help="request header (repeatable)",
    )
    call.add_argument(
        "-d", "--data", metavar="DATA", help="request body, or @FILE to read it from a file"
    )
    call.add_argument(
        "--stream", action="store_true", help="use CallStream and print the body as it arrives"
    )
    call.add_argument("--timeout", type=float, metavar="SECONDS", help="the call's timeout")
    call.add_argument("--idempotency-key", default="", metavar="KEY", help="makes a POST retryable")
    call.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    _add_target_args(call)

    status = commands.add_parser(
        "status",
        help="show the integrations of a running agent",
        description="Print the live table of integrations (ListIntegrations) of a running agent.",
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_target_args(status)

    demo = commands.add_parser(
        "demo",
        help="a self-contained tour of the policies on loopback",
        description="Start a fake upstream and an agent on loopback and show, call by call, "
        "rate limiting, a retry, a breaker opening and closing, a fallback, the cache and a "
        "token refresh. Needs no config and no network; stops by itself (about 10s).",
    )
    demo.add_argument("--fast", action="store_true", help="shorter waits (for tests)")
    return parser


def _add_log_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-format",
        choices=("json", "text"),
        default=os.environ.get("KILO_AGENT_LOG_FORMAT", "json"),
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=os.environ.get("KILO_AGENT_LOG_LEVEL", "info"),
    )


def _add_target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        default=os.environ.get("KILO_AGENT_TARGET", DEFAULT_TARGET),
        metavar="ADDR",
        help="agent address, HOST:PORT or unix:///path.sock "
        f"(default $KILO_AGENT_TARGET or {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("KILO_AGENT_TOKEN", ""),
        metavar="TOKEN",
        help="caller token, when the agent has callers configured (default $KILO_AGENT_TOKEN)",
    )
    parser.add_argument(
        "--deadline", type=float, default=60.0, metavar="SECONDS", help="gRPC deadline"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "check-config":
        return _check_config(args)
    if args.command == "demo":
        from agent.demo import run_demo

        return run_demo(fast=args.fast)
    from agent import client_cli

    if args.command == "call":
        return client_cli.call(args)
    return client_cli.status(args)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from agent.config import default_config, load_config, secret_values
    from agent.errors import ConfigError
    from agent.logs import setup_logging

    setup_logging(fmt=args.log_format, level=args.log_level)
    log = logging.getLogger("agent")
    path = args.config or os.environ.get("KILO_AGENT_CONFIG")
    try:
        if path:
            config = load_config(path)
            log.info("config loaded", extra={"path": str(path)})
        else:
            config, enabled = default_config()
            log.info(
                "no config file given: built-in default",
                extra={"enabled": enabled, "hint": "set e.g. OPENAI_API_KEY, or pass --config"},
            )
    except ConfigError as exc:
        print(f"kilo-agent: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"kilo-agent: cannot read config {path}: {exc.strerror}", file=sys.stderr)
        return 2
    setup_logging(fmt=args.log_format, level=args.log_level, secrets=secret_values(config))
    if args.workers > 1 and not args.worker:
        return _serve_workers(args, config, path)
    from agent.app import run  # not in the --workers supervisor: it serves no calls

    worker = None
    if args.worker:
        index, _, count = args.worker.partition("/")
        worker = (int(index), int(count))
    try:
        return run(config, listen=args.listen, worker=worker)
    except ConfigError as exc:
        print(f"kilo-agent: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. the listen address is taken
        log.error("cannot start", extra={"error": str(exc)})
        return 1


def _serve_workers(args: argparse.Namespace, config: Any, path: str | None) -> int:
    """Start ``--workers`` agent processes on one port and supervise them."""
    from agent.workers import reserve_port, supervise

    listen = args.listen or config.listen.grpc
    if listen.startswith("unix:") or args.workers > 64:
        print(
            "kilo-agent: --workers needs a TCP listen address (HOST:PORT; SO_REUSEPORT does not "
            "apply to Unix sockets) and at most 64 workers",
            file=sys.stderr,
        )
        return 2
    try:
        address, holder = reserve_port(listen)
    except OSError as exc:
        print(f"kilo-agent: cannot bind {listen}: {exc.strerror}", file=sys.stderr)
        return 1
    common = ["--log-format", args.log_format, "--log-level", args.log_level, "--listen", address]
    if path:
        common += ["--config", str(path)]
    argv = [
        ["-m", "agent", "serve", *common, "--worker", f"{i}/{args.workers}"]
        for i in range(args.workers)
    ]
    try:
        return supervise(argv)
    finally:
        holder.close()


def _check_config(args: argparse.Namespace) -> int:
    from agent.config import load_config, redacted_dump
    from agent.errors import ConfigError

    try:
        config = load_config(Path(args.path))
    except ConfigError as exc:
        print(f"kilo-agent check-config: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kilo-agent check-config: cannot read {args.path}: {exc.strerror}", file=sys.stderr)
        return 1
    dumped = redacted_dump(config)
    if args.format == "json":
        print(json.dumps(dumped, indent=2))
    else:
        import yaml

        print(yaml.safe_dump(dumped, sort_keys=False), end="")
    print(f"config OK: {len(config.integrations)} integration(s)", file=sys.stderr)
    return 0
