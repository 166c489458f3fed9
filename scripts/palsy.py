"""The ``palsy`` command (docs/design.md §7). Each subcommand lives in ``scripts/commands/<name>.py``.

Exit status (:data:`EXIT_STATUS`, also in ``palsy --help``): 0 success, 2 bad input (a clear message
naming the field, the value and what is allowed: only the project's input errors, :func:`input_errors`,
and argparse's), 1 an internal error or a failure of the system (a full disk: the message names the
path), 128+N stopped by signal N. No traceback unless ``--debug``. Everything printed from user text goes
through :mod:`palsy.reports.terminal` (escape codes and line breaks made visible); a single-valued flag
given twice, or any flag given an empty value, is an error, not "the last one wins" or "the default".
A closed standard output (``palsy posterior | head -1``) ends the command quietly. SIGTERM and SIGHUP
unwind the command like Ctrl-C does, so that what it started (the PDF helper) is stopped and nothing
is left half-written.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import signal
import sys
import warnings

from palsy import __version__
from palsy.reports import terminal as T
from palsy.scripts import stopping
from palsy.scripts.stopping import Stopped

COMMANDS = {
    "posterior": "the differential: P(infiltration | findings) against its mimics, with intervals and why",
    "report": "the clinician report (HTML and PDF) for a patient file",
    "fit": "fit a variant and store it in the cache",
    "check": "the statistician's report: diagnostics, checks, LOO, sensitivity",
    "teach": "the teaching lesson and interactive page",
    "evidence": "the evidence table with citations (validates priors/)",
    "serve": "the CDS Hooks service for the record system (FHIR prefetch in, cards out); SIGTERM or Ctrl-C "
             "stops it gracefully (the requests in progress are answered), with status 0; SIGHUP never stops it: "
             "with one worker it reads the configuration and evidence again (a SIGHUP during the start acts once "
             "ready), with several it restarts the workers one by one",
    "registry": "a hospital's registry of adjudicated palsies: check, summary, export counts, rows from feedback",
}


EXIT_STATUS = """exit status:
  0      success: the answer, report or other output was written
  1      an internal error (a one-line message; --debug shows the traceback), or the system failed
         (a full or failing disk: the message names the path); palsy fit also when the fit's
         diagnostics fail or its cache could not be written. For the other commands a cache that
         cannot be written is a warning, not a failure: the answer is still printed
  2      bad input: a flag, a patient file, the evidence (priors/), a path given; the message names
         the field, the value and what is allowed, and nothing is written
  128+N  stopped by signal N (130: Ctrl-C, 143: SIGTERM); nothing is left half-written"""


class UsageError(Exception):
    """Bad input detected by a command (exit status 2)."""


def _empty(values) -> bool:
    """Whether a flag's value (or any of its values) is an empty or blank string."""
    items = values if isinstance(values, list) else [values]
    return any(isinstance(v, str) and not v.strip() for v in items)


def _refuse_empty(action: argparse.Action, values) -> None:
    if _empty(values):
        raise argparse.ArgumentError(action, "an empty value is not allowed; give a value" +
                                     (", or leave the flag out for its default" if action.option_strings else ""))


class _StoreOnce(argparse._StoreAction):
    """A single-valued flag: giving it twice (``--lineage T-ALL --lineage AML``) or with an empty value
    (``--causes ''``) is an error."""

    def __call__(self, parser, namespace, values, option_string=None):
        _refuse_empty(self, values)
        if option_string is not None:
            seen = namespace.__dict__.setdefault("_palsy_given", set())
            if self.dest in seen:
                raise argparse.ArgumentError(self, f"given more than once (last {values!r}); give it once")
            seen.add(self.dest)
        super().__call__(parser, namespace, values, option_string)


class _AppendNonEmpty(argparse._AppendAction):
    """A repeatable flag (``--csf``): each value must be non-empty."""

    def __call__(self, parser, namespace, values, option_string=None):
        _refuse_empty(self, values)
        super().__call__(parser, namespace, values, option_string)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors are bad input too: exit 2
        self.print_usage(sys.stderr)
        sys.stderr.write(T.line(f"palsy: error: {message}") + "\n")
        raise SystemExit(2)

    def add_argument(self, *args, **kwargs):
        # every flag or positional that takes a value refuses an empty one (every subcommand, every flag);
        # an optional flag that stores one value may be given once (positionals are single anyway)
        action = kwargs.get("action", "store")
        if action == "store":
            kwargs["action"] = _StoreOnce
        elif action == "append":
            kwargs["action"] = _AppendNonEmpty
        return super().add_argument(*args, **kwargs)


def input_errors() -> tuple[type[BaseException], ...]:
    """The project's input errors: exit status 2 with their message. Any other exception (a ValueError
    from palsy's own code included) is an internal error, exit status 1."""
    from palsy.model.cache import CacheError
    from palsy.model.evidence import EvidenceError
    from palsy.model.findings import InputError
    from palsy.model.safe_yaml import YAMLInputError
    from palsy.reports.output import OutputPathError

    return (InputError, EvidenceError, CacheError, YAMLInputError, OutputPathError, UsageError, argparse.ArgumentError)


#: OSErrors about a path the user gave (a folder where a file is expected, a file where a folder is,
#: no permission): bad input, exit status 2, with the path named.
PATH_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
#: The same for an OSError of another class that names its path: a read-only file system, a name too long.
PATH_ERRNOS = frozenset({errno.ENOENT, errno.EEXIST, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM,
                         errno.EROFS, errno.ENAMETOOLONG, errno.ELOOP})
#: A disk that is full or failing (a write of standard output names no path).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})
#: Problems and lines printed at most in one message; each line at most this many characters, and the
#: whole message about this many (the rest counted, not printed).
MAX_PROBLEMS, MAX_LINES, MAX_PROBLEM_CHARS, MAX_MESSAGE_CHARS = 50, 50, 500, 8000


def system_errors() -> tuple[type[BaseException], ...]:
    """What the system lacks (not palsy's fault, not the input's): exit status 1 with its own message."""
    from palsy.reports.pdf import ChromiumUnavailable

    return (ChromiumUnavailable,)


def exit_status(exc: BaseException) -> int:
    """2 for bad input (the project's input errors, a bad path given), 1 for anything else."""
    if isinstance(exc, input_errors() + PATH_ERRORS):
        return 2
    if isinstance(exc, OSError) and exc.filename is not None and exc.errno in PATH_ERRNOS:
        return 2
    return 1


def _message(command: str, exc: BaseException) -> str:
    """The error message of ``exc``, every line made safe for the terminal (user text is in it) and the
    whole capped: at most :data:`MAX_PROBLEMS` problems (or :data:`MAX_LINES` lines), then how many more
    were left out, so that 100,000 bad values print a few kB, not megabytes."""
    problems = getattr(exc, "problems", None)
    if isinstance(problems, list) and problems:
        head = str(exc).split("\n", 1)[0]
        return _capped(T.line(f"palsy {command}: {head}"),
                       (T.line(f"  - {p}", MAX_PROBLEM_CHARS) for p in problems[:MAX_PROBLEMS]), len(problems), "")
    if isinstance(exc, OSError) and exc.filename is not None:
        return T.line(f"palsy {command}: {exc.filename}: {exc.strerror or exc}")
    lines = f"palsy {command}: {exc}".split("\n")
    return _capped(T.line(lines[0]), (T.line(x, MAX_PROBLEM_CHARS) for x in lines[1:MAX_LINES]), len(lines) - 1, " lines")


def _capped(head: str, lines, total: int, unit: str) -> str:
    """``head`` and as many of ``lines`` as fit in :data:`MAX_MESSAGE_CHARS`, then how many of ``total``
    were left out."""
    out, size = [head], len(head)
    for line in lines:
        if size + len(line) > MAX_MESSAGE_CHARS:
            break
        out.append(line)
        size += len(line) + 1
    more = total - (len(out) - 1)
    return "\n".join(out) + (f"\n  ... and {more:,} more{unit}" if more > 0 else "")


def _say(text: str) -> None:
    """One message on stderr (a closed stderr is not an error of its own)."""
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _stdout_closed() -> bool:
    """Whether standard output is a pipe nobody reads any more (``| head -1`` has exited)."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.__stdout__.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows): the broken pipe was standard output's
        return True


def _silence_stdout() -> None:
    """Point standard output at the null device, so the flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):
        pass


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one clean line (``palsy: warning: ...``), not Python's file:line form."""
    text = str(message)
    text = text[len("palsy: "):] if text.startswith("palsy: ") else text
    (file or sys.stderr).write(T.line(f"palsy: warning: {text}") + "\n")


def available(only: str | None = None) -> dict[str, object]:
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
    p = _Parser(prog="palsy", description="Facial palsy in acute leukaemia: leukaemic infiltration or a mimic? A Bayesian model.",
                epilog=EXIT_STATUS, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"palsy {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        if name not in mods and len(mods) > 1:
            continue  # a command whose module is absent
        sp = sub.add_parser(name, help=COMMANDS[name], description=COMMANDS[name], epilog=EXIT_STATUS,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        if name in mods:
            mods[name].add_arguments(sp)
    return p


def _command(argv: list[str]) -> str | None:
    """The subcommand ``argv`` names (its first word that is not a flag), if it is one."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    """Run the ``palsy`` command with ``argv`` (default: the process's arguments); return its exit status.

    While it runs, SIGTERM and SIGHUP unwind it as Ctrl-C does (:mod:`palsy.scripts.stopping`), with status
    128+N, also when some code swallowed the stop or the signal arrives as the handlers are put back; the
    caller's handlers and signal mask are put back after."""
    argv = sys.argv[1:] if argv is None else argv
    caught = stopping.Caught()
    said_stopped = False
    try:
        stopping.catch(caught)
        status = _main(argv)
        if (signum := stopping.received()) is not None:  # the handler ran, yet the command went on to its end
            _say(f"palsy: stopped ({stopping.name(signum)}), though the command had gone on after it")
            status, said_stopped = 128 + signum, True
    except (KeyboardInterrupt, Stopped) as exc:
        status, said_stopped = _stopped(exc), True
    except Exception as exc:  # before a command runs (a command module that cannot be imported): one line
        if "--debug" in argv:
            raise
        _say(T.line(f"palsy: internal error: {type(exc).__name__}: {exc} (run with --debug for details)"))
        status = 1
    finally:
        late = stopping.release(caught)
    if isinstance(late, (KeyboardInterrupt, Stopped)):  # a signal as the handlers were put back
        status = status if said_stopped else _stopped(late)
    elif late is not None:
        raise late
    return status


def _stopped(exc: BaseException) -> int:
    """Say that the command was stopped, by Ctrl-C or a signal; return its exit status (128+N)."""
    signum = exc.signum if isinstance(exc, Stopped) else signal.SIGINT
    _say(f"palsy: stopped ({stopping.name(signum)})")
    return 128 + signum


def _main(argv: list[str]) -> int:
    from palsy.scripts.commands import common

    common.PRIORS_ON_COMMAND_LINE = common.priors_in(argv)  # the finding flags follow --priors' schema
    only = _command(argv)
    if only is None and "--version" in argv and "-h" not in argv and "--help" not in argv:
        mods: dict[str, object] = {}  # the version needs no command module
    else:
        mods = available(only) if only else available()
    if only and only not in mods:
        mods = available()
    args = parser(mods).parse_args(argv)
    if hasattr(args, "_palsy_given"):
        del args._palsy_given

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            status = int(mods[args.command].run(args) or 0)
            sys.stdout.flush()  # a closed pipe shows here, not in the flush at exit
            return status
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and _stdout_closed():
                _silence_stdout()  # the reader has what it wanted (| head): a quiet end
                return 0
            if args.debug:
                raise
            status = exit_status(exc)
            if status == 2 or (isinstance(exc, OSError) and exc.filename is not None) or isinstance(exc, system_errors()):
                _say(_message(args.command, exc))
            elif isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
                # a write without a path: standard output (palsy's own files carry theirs) on a full or failing disk
                # is the system's failure, not palsy's (an attacker's review, s16: it read as an internal error)
                _say(T.line(f"palsy {args.command}: the system failed writing the output (standard output): "
                            f"{exc.strerror or exc}"))
            else:  # an internal error: say so plainly, on one line
                _say(T.line(f"palsy {args.command}: internal error: {type(exc).__name__}: {exc} "
                            f"(run with --debug for details)"))
            return status


if __name__ == "__main__":
    sys.exit(main())
