"""The ``palsy`` command (DESIGN §7). Each subcommand lives in ``scripts/commands/<name>.py``.

Exit status: 0 success, 2 bad input (a clear message naming the field, the value and what is
allowed), 1 internal error. No traceback unless ``--debug``. Everything printed from user text goes
through :mod:`palsy.reports.terminal` (escape codes and line breaks made visible); a single-valued flag
given twice is an error, not "the last one wins".
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from palsy.reports import terminal as T

COMMANDS = {
    "posterior": "the differential: P(infiltration | findings) against its mimics, with intervals and why",
    "report": "the clinician report (HTML and PDF) for a patient file",
    "fit": "fit a variant and store it in the cache",
    "check": "the statistician's report: diagnostics, checks, LOO, sensitivity",
    "teach": "the teaching lesson and interactive page",
    "evidence": "the evidence table with citations (validates priors/)",
    "serve": "the CDS Hooks service for the record system (FHIR prefetch in, cards out)",
}


class UsageError(Exception):
    """Bad input detected by a command (exit status 2)."""


class _StoreOnce(argparse._StoreAction):
    """A single-valued flag: giving it twice (``--lineage T-ALL --lineage AML``) is an error."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = namespace.__dict__.setdefault("_palsy_given", set())
        if self.dest in seen:
            raise argparse.ArgumentError(self, f"given more than once (last {values!r}); give it once")
        seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors are bad input too: exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(T.line(f"palsy: error: {message}") + "\n")
        raise SystemExit(2)

    def add_argument(self, *args, **kwargs):
        # every optional flag that stores one value may be given once (positionals are single anyway)
        if args and str(args[0]).startswith("-") and kwargs.get("action", "store") == "store":
            kwargs["action"] = _StoreOnce
        return super().add_argument(*args, **kwargs)


#: OSErrors about a path the user gave (a folder where a file is expected, a file where a folder is,
#: no permission): bad input, exit status 2, with the path named.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def _message(command: str, exc: BaseException) -> str:
    """The error message of ``exc``, every line made safe for the terminal (user text is in it)."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        head = str(exc).split("\n", 1)[0]
        return T.problems(f"palsy {command}: {head}", problems)
    if isinstance(exc, OSError) and exc.filename is not None:
        return T.line(f"palsy {command}: {exc.filename}: {exc.strerror or exc}")
    return T.text(f"palsy {command}: {exc}")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one clean line (``palsy: warning: ...``), not Python's file:line form."""
    text = str(message)
    text = text[len("palsy: "):] if text.startswith("palsy: ") else text
    (file or sys.stderr).write(T.line(f"palsy: warning: {text}") + "\n")


def _available(only: str | None = None) -> dict[str, object]:
    """The command modules (only ``only``'s when given: a query imports nothing it does not run)."""
    mods = {}
    for name in [only] if only else COMMANDS:
        try:
            mods[name] = importlib.import_module(f"palsy.scripts.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"palsy.scripts.commands.{name}":
                raise
    return mods


def parser(mods: dict[str, object]) -> argparse.ArgumentParser:
    p = _Parser(prog="palsy", description="Facial palsy in acute leukaemia: leukaemic infiltration or a mimic? A Bayesian model.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        if name not in mods and len(mods) > 1:
            continue  # a command whose module is absent
        sp = sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name])
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        if name in mods:
            mods[name].add_arguments(sp)
    return p


def _command(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not a flag), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    only = _command(argv)
    mods = _available(only) if only else _available()
    if only and only not in mods:
        mods = _available()
    args = parser(mods).parse_args(argv)
    if hasattr(args, "_palsy_given"):
        del args._palsy_given
    from palsy.model.evidence import EvidenceError
    from palsy.model.findings import InputError

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(mods[args.command].run(args) or 0)
        except (InputError, EvidenceError, UsageError, ValueError, *PATH_ERRORS) as exc:
            if args.debug:
                raise
            sys.stderr.write(_message(args.command, exc) + "\n")
            return 2
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # an internal error: say so plainly
            if args.debug:
                raise
            sys.stderr.write(T.line(f"palsy {args.command}: internal error: {type(exc).__name__}: {exc} "
                                    f"(run with --debug for details)") + "\n")
            return 1


if __name__ == "__main__":
    sys.exit(main())
