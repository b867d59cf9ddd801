"""Command line: `python -m scheduler_site.devstack {exec,dev,clean,services}`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from scheduler_site.devstack.dev import clean_dev, run_dev
from scheduler_site.devstack.process import StackError
from scheduler_site.devstack.services import Stack
from scheduler_site.devstack.supervise import Shutdown, shutdown_on_signals

EXIT_STACK_ERROR = 1
EXIT_NOT_FOUND = 127
EXIT_SIGNAL_BASE = 128
REPO_ROOT = Path(__file__).resolve().parents[2]


def run_exec(command: Sequence[str]) -> int:
    """Start a throw-away stack, run `command` against it, stop it, return its code."""
    stack = Stack(persistent=False)
    try:
        env = stack.start()
        print(
            f"devstack: services ready in {stack.start_seconds:.1f} s", file=sys.stderr
        )
        return _run_forwarding_signals(command, {**os.environ, **env})
    finally:
        stack.stop()


def _run_forwarding_signals(command: Sequence[str], env: dict[str, str]) -> int:
    """Run the command in our process group, passing on stop signals sent only to us."""
    try:
        proc = subprocess.Popen(list(command), env=env)
    except FileNotFoundError:
        print(f"devstack: command not found: {command[0]}", file=sys.stderr)
        return EXIT_NOT_FOUND

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and _terminal_delivers_sigint():
            return  # the terminal already sent it to the whole foreground group
        proc.send_signal(signum)

    previous = {
        sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_SIGNAL_BASE - code if code < 0 else code  # shell convention


def _terminal_delivers_sigint() -> bool:
    """Tell whether we are the terminal's foreground group (Ctrl-C hits the child)."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) == os.getpgrp()
    except (OSError, ValueError):
        return False


def print_services() -> int:
    """Start a throw-away stack, print its variables, and stop it (a smoke check)."""
    with Stack(persistent=False) as stack:
        for name, value in stack.env.items():
            print(f"{name}={value}")
        print(f"# started in {stack.start_seconds:.1f} s", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Describe the subcommands."""
    parser = argparse.ArgumentParser(prog="python -m scheduler_site.devstack")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("exec", help="run a command against a throw-away stack")
    run.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    sub.add_parser("dev", help="run the dev environment (what `make dev` runs)")
    sub.add_parser("clean", help="remove .devstack/ when nothing is using it")
    sub.add_parser("services", help="start a throw-away stack, print its URLs, stop")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch a subcommand; report StackError as one readable line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = logging.INFO if args.command == "dev" else logging.WARNING
    level = logging.DEBUG if args.verbose else quiet
    logging.basicConfig(level=level, format="devstack: %(message)s")
    command = list(getattr(args, "argv", []))
    command = command[1:] if command[:1] == ["--"] else command
    if args.command == "exec" and not command:
        parser.error("exec needs a command: exec -- CMD [ARGS...]")
    try:
        if args.command == "dev":
            return run_dev(REPO_ROOT)  # handles its own signals
        if args.command == "clean":
            return clean_dev(REPO_ROOT)
        with shutdown_on_signals():
            return run_exec(command) if args.command == "exec" else print_services()
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return EXIT_STACK_ERROR
    except Shutdown as stop:
        return EXIT_SIGNAL_BASE + stop.signum


if __name__ == "__main__":
    sys.exit(main())
