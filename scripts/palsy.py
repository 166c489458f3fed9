"""The ``palsy`` command (DESIGN §7). Each subcommand lives in ``scripts/commands/<name>.py``.

Exit status: 0 success, 2 bad input (a clear message naming the field, the value and what is
allowed), 1 internal error. No traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "posterior": "the differential: P(infiltration | findings) against its mimics, with intervals and why",
    "report": "the clinician report (HTML and PDF) for a patient file",
    "fit": "fit a variant and store it in the cache",
    "check": "the statistician's report: diagnostics, checks, LOO, sensitivity",
    "teach": "the teaching lesson and interactive page",
    "evidence": "the evidence table with citations (validates priors/)",
}


class UsageError(Exception):
    """Bad input detected by a command (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors are bad input too: exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(f"palsy: error: {message}\n")
        raise SystemExit(2)


def _available() -> dict[str, object]:
    mods = {}
    for name in COMMANDS:
        try:
            mods[name] = importlib.import_module(f"scripts.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"scripts.commands.{name}":
                raise
    return mods


def parser(mods: dict[str, object]) -> argparse.ArgumentParser:
    p = _Parser(prog="palsy", description="Facial palsy in acute leukaemia: leukaemic infiltration or a mimic? A Bayesian model.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, mod in mods.items():
        sp = sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        mod.add_arguments(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    mods = _available()
    args = parser(mods).parse_args(argv)
    from model.evidence import EvidenceError
    from model.findings import InputError

    try:
        return int(mods[args.command].run(args) or 0)
    except (InputError, EvidenceError, UsageError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        sys.stderr.write(f"palsy {args.command}: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # an internal error: say so plainly
        if args.debug:
            raise
        sys.stderr.write(f"palsy {args.command}: internal error: {type(exc).__name__}: {exc} (run with --debug for details)\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
