"""``fitiq-rt logs``: the operator's commands over the server's JSON logs.

    fitiq-rt logs report FILE... [--json] [--html OUT] [--top N]
    fitiq-rt logs timeline --user ID FILE... [--json]

FILE is a log file, a ``.gz`` file, or ``-`` for stdin; several are read in order as one log
(rotated files oldest first). Exit codes: 0 (the report was produced, whatever it found), 2 (an
input cannot be read, or the HTML cannot be written: one line on stderr).

Wiring into the main argparse CLI::

    from fitiq_rt.logreport import add_logs_parser, run_logs
    add_logs_parser(subparsers)              # subparsers = parser.add_subparsers(dest=...)
    ...
    if args.command == "logs": return run_logs(args)

``add_logs_parser`` also sets ``func=run_logs`` as a parser default for CLIs that dispatch on it.
Standalone: ``python -m fitiq_rt.logreport.cli logs report FILE``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from .. import events as ev
from .analyzer import analyze
from .reading import LogReadError

_PROG_ERROR = "fitiq-rt logs"


def add_logs_parser(subparsers: Any) -> None:
    """Add ``logs report`` and ``logs timeline`` to an argparse ``add_subparsers()`` object."""
    logs = subparsers.add_parser(
        "logs",
        help="analyze the server's JSON logs (report, timeline)",
        description="Find the seed's bug and its relatives in fitiq-rt JSON logs.",
    )
    logs.set_defaults(func=run_logs)
    sub = logs.add_subparsers(dest="logs_command", metavar="{report,timeline}")
    sub.required = True

    report = sub.add_parser(
        "report",
        help="sessions, delivery, anomalies with file:line, success metrics",
        description="One pass over the logs: connections, delivery, anomalies, success metrics.",
    )
    report.add_argument("files", nargs="+", metavar="FILE", help="log file, .gz, or - for stdin")
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument("--html", metavar="OUT", help="also write a self-contained HTML report")
    report.add_argument("--top", type=int, default=10, metavar="N", help="users listed (10)")

    tl = sub.add_parser(
        "timeline",
        help="one user's events in order, anomalies marked",
        description="One user's events in order, with the anomalies that concern them marked.",
    )
    tl.add_argument("--user", required=True, metavar="ID", help="user_id to follow")
    tl.add_argument("files", nargs="+", metavar="FILE", help="log file, .gz, or - for stdin")
    tl.add_argument("--json", action="store_true", help="print the timeline as JSON")


def run_logs(args: argparse.Namespace) -> int:
    """Run the parsed ``logs`` command; return the process exit code."""
    try:
        if args.logs_command == "timeline":
            return _run_timeline(args)
        return _run_report(args)
    except LogReadError as exc:
        print(f"{_PROG_ERROR}: cannot read {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`: the reader left, nothing more to say
        return 0


def _write_json(value: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()


def _run_report(args: argparse.Namespace) -> int:
    from ..extras import install_hint
    from .html_report import write_html
    from .json_report import to_json
    from .terminal_report import render_terminal

    report = analyze(args.files, top_n=args.top)
    if args.html:
        try:
            write_html(report, args.html)
        except OSError as exc:
            print(
                f"{_PROG_ERROR}: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr
            )
            return 2
        except ModuleNotFoundError as missing:
            hint = install_hint(missing)
            if hint is None:
                raise
            print(f"{_PROG_ERROR}: --html: {hint}", file=sys.stderr)
            return 1
        print(f"wrote {args.html}", file=sys.stderr)
    if args.json:
        _write_json(to_json(report))
    else:
        render_terminal(report)
    return 0


def _run_timeline(args: argparse.Namespace) -> int:
    from .user_timeline import render_timeline, timeline, timeline_to_json

    tl = timeline(args.files, args.user)
    if args.json:
        _write_json(timeline_to_json(tl))
        return 0
    if all(entry.event.startswith(ev.SERVER_PREFIX) for entry in tl.entries):  # context lines only
        names = ", ".join(args.files)
        print(
            f"fitiq-rt logs timeline: no events for user {args.user!r} in {names}", file=sys.stderr
        )
        return 1
    render_timeline(tl)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (the same commands as ``fitiq-rt logs``)."""
    parser = argparse.ArgumentParser(prog="fitiq-rt")
    add_logs_parser(parser.add_subparsers(dest="command", required=True))
    return run_logs(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
