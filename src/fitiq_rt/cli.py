"""`fitiq-rt`: serve | token | listen | logs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .config import SETTINGS, SettingsError, flag_name, load_settings
from .logreport import add_logs_parser, run_logs


def _add_serve(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the server (every FITIQ_* variable is also a flag)"
    )
    for variable, info in SETTINGS.items():
        serve.add_argument(
            flag_name(variable),
            dest=variable,
            metavar=info.field.upper(),
            help=f"{info.meaning} (env {variable}; default {info.shown_default})".replace(
                "%", "%%"
            ),
        )


def _add_token(subparsers: argparse._SubParsersAction) -> None:
    token = subparsers.add_parser("token", help="print a token for a user")
    token.add_argument("user_id")
    token.add_argument("--admin", action="store_true", help="add role=admin (debug endpoints)")
    token.add_argument("--ttl", type=float, default=24 * 3600, help="lifetime in seconds")
    token.add_argument("--data-dir", dest="FITIQ_DATA_DIR", help="overrides FITIQ_DATA_DIR")


def _add_listen(subparsers: argparse._SubParsersAction) -> None:
    listen = subparsers.add_parser(
        "listen", help="print a user's notifications as they arrive (reconnects and resumes)"
    )
    source = listen.add_mutually_exclusive_group(required=True)
    source.add_argument("--token", help="the user's token (fitiq-rt token USER)")
    source.add_argument(
        "--token-command",
        metavar="CMD",
        help="a command printing a fresh token, run at start and whenever the server warns "
        "that the token expires (`token_expiring`): the socket is refreshed, not closed 4001",
    )
    listen.add_argument("--url", default="ws://127.0.0.1:8080/ws/meal-logs")
    listen.add_argument("--last-seq", type=int, default=None, help="replay from after this seq")
    listen.add_argument("--json", action="store_true", help="one JSON object a line")


def _run_listen(args: argparse.Namespace) -> int:
    import orjson
    import trio

    from .client import ClientStopped, ReferenceClient, command_token, static_token

    if args.last_seq is not None and args.last_seq < 0:
        raise SettingsError("--last-seq must be 0 or more")
    if not args.url.startswith(("ws://", "wss://")):
        raise SettingsError(
            f"--url must start with ws:// or wss://, got {args.url.split('://')[0]!r} "
            "(e.g. ws://127.0.0.1:8080/ws/meal-logs)"
        )

    async def show(frame: dict[str, object]) -> None:
        if args.json:
            sys.stdout.write(orjson.dumps(frame).decode() + "\n")
        else:
            data = frame.get("data") or {}
            assert isinstance(data, dict)
            totals = data.get("totals") or {}
            assert isinstance(totals, dict)
            sys.stdout.write(
                f"#{frame['seq']} {frame['type']} {data.get('raw_input', '')!r} "
                f"{totals.get('calories', '?')} kcal ({data.get('id')})\n"
            )
        sys.stdout.flush()

    from .logconfig import configure_logging

    # Notifications alone go to stdout (so `--json` stays one object a line); connects, retries
    # and their reasons go to stderr, readable on a terminal.
    configure_logging("console" if sys.stderr.isatty() else "json", "info")
    tokens = command_token(args.token_command) if args.token_command else static_token(args.token)
    client = ReferenceClient(args.url, tokens, last_seq=args.last_seq)
    try:
        trio.run(client.run, show)
    except BaseException as error:  # trio 0.35 raises Ctrl-C inside an exception group
        if _only(error, KeyboardInterrupt):
            return 0
        stopped = _only(error, ClientStopped)
        if stopped is None:
            raise
        print(f"fitiq-rt listen: {stopped}", file=sys.stderr)
        return 1
    return 0


def _only(error: BaseException, kind: type[BaseException]) -> BaseException | None:
    """`error` itself, or the one exception of that kind an exception group wraps."""
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error if isinstance(error, kind) else None


def _run_serve(args: argparse.Namespace) -> int:
    import trio

    from .logconfig import configure_logging
    from .server import serve
    from .startup_errors import explain

    overrides = {name: getattr(args, name) for name in SETTINGS if getattr(args, name, None)}
    settings = load_settings(overrides=overrides)
    configure_logging(settings.log_format, settings.log_level)
    started = False

    async def run() -> None:
        nonlocal started
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, settings)
            started = True

    try:
        trio.run(run)
    except BaseException as error:
        failure = None if started else explain(error, settings)
        if failure is None:
            raise
        print(f"fitiq-rt: {failure.message}", file=sys.stderr)
        return failure.exit_status
    return 0


def _run_token(args: argparse.Namespace) -> int:
    from .auth import SecretMissing, existing_secret, mint_token

    overrides = {"FITIQ_DATA_DIR": args.FITIQ_DATA_DIR} if args.FITIQ_DATA_DIR else {}
    settings = load_settings(overrides=overrides)
    if args.ttl <= 0:
        raise SettingsError("--ttl must be a positive number of seconds")
    try:
        secret = existing_secret(settings)
    except SecretMissing as missing:
        print(f"fitiq-rt token: {missing}", file=sys.stderr)
        return 1  # an environment problem, not a bad value
    try:
        token = mint_token(secret, args.user_id, ttl=args.ttl, admin=args.admin)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fitiq-rt", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_serve(subparsers)
    _add_token(subparsers)
    _add_listen(subparsers)
    add_logs_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runners = {"serve": _run_serve, "token": _run_token, "listen": _run_listen, "logs": run_logs}
    try:
        return runners[args.command](args)
    except SettingsError as error:
        print(f"fitiq-rt: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
