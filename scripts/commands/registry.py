"""``palsy registry``: a hospital's registry of adjudicated palsies (docs/registry.md).

    palsy registry check FILE               validate (every problem named by row and field); selection warnings
    palsy registry summary FILE [--json]    counts by cause, site, year, finding; completeness
    palsy registry export-counts FILE --out COUNTS.json [--threshold N] [--force]
                                            per-stratum counts to share, small cells suppressed
    palsy registry from-feedback LOG ADJUDICATION --site CODE --out REGISTRY.yaml [--force]
                                            the service's feedback log and later adjudications as registry rows
    palsy registry from-feedback LOG --template ADJUDICATION.csv
                                            the adjudication form: one line per answer the service gave

Exit status 0 (warnings are printed and do not fail), 2 for bad input (nothing written). No command writes
over one of its inputs; ``--out`` writes over an existing file only with ``--force``, and ``--template``
never does (a form may hold weeks of adjudications).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from palsy.reports import terminal as T
from palsy.scripts.commands import common

ACTIONS = ("check", "summary", "export-counts", "from-feedback")
RG_MIN = 3  # palsy.model.registry.MIN_THRESHOLD (not imported here: the parser is built before any command runs)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="what to do with the registry")
    p.add_argument("file", help="the registry file (CSV or YAML); for from-feedback the service's feedback log")
    p.add_argument("adjudication", nargs="?", default=None,
                   help="from-feedback: the adjudication file (CSV or YAML: card, final_cause, other_cause, "
                        "established_by, follow_up_months)")
    p.add_argument("--priors", help="evidence folder (default: the repository's priors/)")
    p.add_argument("--json", action="store_true", help="summary/check: print one JSON object")
    p.add_argument("--out", help="export-counts: the counts file to write; from-feedback: the registry file to write "
                                 "(never one of the inputs; an existing file only with --force)")
    p.add_argument("--force", action="store_true",
                   help="export-counts, from-feedback --out: write over an existing file (never over an input)")
    p.add_argument("--threshold", type=common.whole_number("threshold", 1, 1000), default=None,
                   help=f"export-counts: suppress cells of fewer patients, {RG_MIN} to 1000 (default: "
                        "priors/registry.yaml's, 5)")
    p.add_argument("--site", help="from-feedback: the site code of the rows")
    p.add_argument("--template", help="from-feedback: write the adjudication form (CSV) for the log's answers (a "
                                      "new file: an existing form is never written over)")


def _bad(problem: str):
    from palsy.model import findings as F

    return F.InputError([problem], "command line")


def run(args: argparse.Namespace) -> int:
    from palsy.model import evidence
    from palsy.model import registry as RG

    pdir = common.priors_dir(args)
    ev = evidence.load(pdir)
    settings = RG.settings(pdir)
    if args.action == "from-feedback":
        return _from_feedback(args, ev)
    if args.adjudication is not None:
        raise _bad(f"{args.action}: takes one file (got also {args.adjudication!r})")
    for flag, actions in (("out", ("export-counts",)), ("threshold", ("export-counts",)), ("site", ()),
                          ("template", ())):
        if getattr(args, flag) is not None and args.action not in actions:
            raise _bad(f"--{flag}: not a flag of registry {args.action}")
    if args.force and args.action != "export-counts":
        raise _bad(f"--force: not a flag of registry {args.action}")
    if args.action == "export-counts":
        _check_out(args.out, "--out", [("the registry", args.file)], args.force, "the counts file")
        if args.threshold is not None and args.threshold < RG.MIN_THRESHOLD:
            raise _bad(f"--threshold: {args.threshold} is not allowed; {RG.THRESHOLD_WHY}")
    reg = RG.read(args.file, ev.schema, ev.causes)
    if args.action == "export-counts":
        return _export(args, reg, ev, settings)
    from palsy.model import registry_summary as RS

    warns = RG.duplicate_rows(reg) + RS.selection_warnings(reg, RS.rate_arrays(ev), ev.structure, settings.site_sigma,
                                                           settings.selection_tail)
    if args.action == "check":
        s = RS.summary(reg)
        if args.json:
            print(json.dumps({"valid": True, "rows": s["rows"], "causes": s["causes"], "warnings": warns}, indent=1))
        else:
            print(T.line(f"{common.shown_path(args.file)}: valid: {s['rows']} rows from {len(reg.sites)} site(s); "
                         f"{s['out_of_scope']} outside the population (left out of the fit)"))
            for w in warns:
                print(T.line(f"warning: {w}"))
        return 0
    s = RS.summary(reg)
    s["warnings"] = warns
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    for line in summary_lines(s):
        print(T.line(line))
    return 0


def summary_lines(s: dict) -> list[str]:
    """The summary as lines of text."""
    out = [f"{s['rows']} rows ({s['in_scope']} in the population, {s['out_of_scope']} outside it)", "", "final cause:"]
    out += [f"  {c:<16} {n:>6}" for c, n in s["causes"].items()]
    out += ["", "by site:"]
    out += [f"  {site:<16} " + ", ".join(f"{c} {n}" for c, n in causes.items()) for site, causes in s["sites"].items()]
    out += ["", "by year: " + ", ".join(f"{y} {n}" for y, n in s["years"].items()),
            "established by: " + (", ".join(f"{e} {n}" for e, n in s["established_by"].items()) or "none given")]
    fu = s["follow_up_months"]
    out.append(f"follow-up: median {fu['median']} months (range {fu['min']} to {fu['max']}; unknown in {fu['unknown']} rows)"
               if fu["known"] else "follow-up: unknown in every row")
    if s["other_causes"]:
        out.append("other causes: " + ", ".join(f"{t} ({n})" for t, n in s["other_causes"].items()))
    out += ["", "completeness (share of rows with the finding known) and levels by final cause:"]
    for f, share in s["completeness"].items():
        levels = s["levels"].get(f) or {}
        detail = "; ".join(f"{lv}: " + ", ".join(f"{c} {n}" for c, n in causes.items()) for lv, causes in levels.items())
        out.append(f"  {f:<22} {100 * share:5.1f}%  {detail}")
    out += ["", "LPs per row: " + ", ".join(f"{k}: {n}" for k, n in s["lps_per_row"].items())]
    for w in s.get("warnings") or []:
        out.append(f"warning: {w}")
    return out


def _check_out(out: str | None, flag: str, inputs: list[tuple[str, str]], force: bool | None, what: str) -> None:
    """Refuse an output path that is one of the command's inputs (compared resolved), a folder, or (unless
    ``force``; never when ``force`` is None) an existing file."""
    if out is None:
        return
    target = Path(out).expanduser().resolve()
    for name, path in inputs:
        if path is not None and Path(path).expanduser().resolve() == target:
            raise _bad(f"{flag}: {out!r} is {name} this command reads; writing {what} there would destroy it: give "
                       "another path")
    if target.is_dir():
        raise _bad(f"{flag}: {out!r} is a folder; give the path of {what}")
    if target.exists() and force is None:
        raise _bad(f"{flag}: {out!r} exists and may hold adjudications already filled in; choose a new name, or "
                   "delete it first")
    if target.exists() and not force:
        raise _bad(f"{flag}: {out!r} exists; give another path, or --force to write over it")


def _export(args: argparse.Namespace, reg, ev, settings) -> int:
    from palsy.model import registry_counts as RC
    from palsy.reports.output import check_writable, write_all

    if args.out is None:
        raise _bad("export-counts: give --out COUNTS.json (the file to share)")
    out = Path(args.out)
    check_writable(out.parent if str(out.parent) else Path("."))
    t = args.threshold if args.threshold is not None else settings.threshold
    counts = RC.export(reg, ev.schema, t)
    write_all(out.parent if str(out.parent) else Path("."), {out.name: RC.to_bytes(counts)})
    print(T.line(f"wrote {common.shown_path(out)}: {len(counts['sites'])} site(s), cells below {t} suppressed"))
    return 0


def _from_feedback(args: argparse.Namespace, ev) -> int:
    from palsy.model import registry_feedback as FB
    from palsy.reports.output import check_writable, write_all

    for flag in ("threshold", "json"):
        if getattr(args, flag) not in (None, False):
            raise _bad(f"--{flag}: not a flag of registry from-feedback")
    if args.template is not None:
        if args.adjudication is not None or args.out is not None or args.site is not None:
            raise _bad("from-feedback --template: give only the log (the form is made from it)")
        if args.force:
            raise _bad("--force: not a flag of from-feedback --template (an existing form may hold adjudications); "
                       "choose a new name for the form, or delete the old one first")
        _check_out(args.template, "--template", [("the feedback log", args.file)], None, "the form")
        path = Path(args.template)
        check_writable(path.parent if str(path.parent) else Path("."), "--template")
        log = FB.read_log(args.file, ev.schema, ev.causes)
        write_all(path.parent if str(path.parent) else Path("."), {path.name: FB.template(log)})
        repeated = sum(1 for n in Counter(e["patient"] for e in log).values() if n > 1)
        note = f" ({repeated} patient(s) answered more than once: adjudicate one line of each)" if repeated else ""
        print(T.line(f"wrote {common.shown_path(path)}: {_n(len(log), 'answer')} to adjudicate{note}"))
        return 0
    if args.adjudication is None or args.out is None or args.site is None:
        raise _bad("from-feedback: give the log, the adjudication file, --site CODE and --out REGISTRY.yaml "
                   "(or --template FORM.csv for the adjudication form)")
    _check_out(args.out, "--out", [("the feedback log", args.file), ("the adjudication form", args.adjudication)],
               args.force, "the registry")
    path = Path(args.out)
    check_writable(path.parent if str(path.parent) else Path("."))
    log = FB.read_log(args.file, ev.schema, ev.causes)
    adjudicated = FB.read_adjudication(args.adjudication, ev.causes)
    reg = FB.rows(log, adjudicated, args.site, ev.schema, ev.causes, source=str(args.adjudication))
    write_all(path.parent if str(path.parent) else Path("."), {path.name: FB.registry_bytes(reg)})
    patients = {e["patient"] for e in log}
    done = {e["patient"] for e in log if e["card"] in adjudicated}
    print(T.line(f"wrote {common.shown_path(path)}: {_n(len(reg.rows), 'registry row')}"))
    print(T.line(f"{len(adjudicated)} of {_n(len(log), 'answer')} ({len(done)} of {_n(len(patients), 'patient')}) "
                 "adjudicated; the rest are not in the registry"))
    return 0


def _n(k: int, word: str) -> str:
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


# --- the registry flags of palsy fit and palsy check ---------------------------------------------------

def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    """``--registry FILE`` (repeatable), ``--registry-counts FILE ...`` and ``--no-registry``."""
    p.add_argument("--registry", action="append", metavar="FILE",
                   help="a registry of adjudicated palsies (CSV or YAML; repeat for several) to fit with, instead "
                        "of those priors/registry.yaml names (docs/registry.md)")
    p.add_argument("--registry-counts", nargs="+", metavar="FILE",
                   help="counts files written by `palsy registry export-counts` at sites that cannot share rows")
    p.add_argument("--no-registry", action="store_true",
                   help="fit without the registry that priors/registry.yaml names")


def fit_registry(args: argparse.Namespace, ev):
    """What ``fit.posterior`` takes as its registry for these flags, and the registry's rows (for the checks
    of ``palsy check``; None when only counts are given or there is no registry).

    Raises
    ------
    findings.InputError
        Conflicting flags, or a registry file with problems (each named).
    """
    from palsy.model import fit
    from palsy.model import registry as RG
    from palsy.model import registry_fit as RF

    given = bool(args.registry or args.registry_counts)
    if args.no_registry and given:
        raise _bad("--no-registry: give it alone, not with --registry or --registry-counts")
    if args.no_registry:
        return None, None
    s = RG.settings(ev.directory)
    if given:
        reg = RF.from_files(ev, rows=args.registry or [], counts=args.registry_counts or [])
        rows = [RG.read(f, ev.schema, ev.causes) for f in args.registry or []]
        combined = RG.combine(rows) if rows else None
        _warn_duplicates(combined)
        same = (sorted(_resolved(args.registry or [])) == sorted(_resolved(s.rows))
                and sorted(_resolved(args.registry_counts or [])) == sorted(_resolved(s.counts)))
        if same:  # the files registry.yaml names: the fit the answers use
            return fit.FROM_PRIORS, combined
        if getattr(args, "command", None) == "fit":
            for line in answers_note(s):
                print(T.line(line))
        return reg, combined
    rows = [RG.read(f, ev.schema, ev.causes) for f in s.rows]
    combined = RG.combine(rows) if rows else None
    _warn_duplicates(combined)
    return fit.FROM_PRIORS, combined


def _resolved(paths) -> list[Path]:
    return [Path(p).expanduser().resolve() for p in paths]


def _warn_duplicates(reg) -> None:
    from palsy.model import registry as RG

    for w in RG.duplicate_rows(reg) if reg is not None else []:
        print(T.line(f"warning: {w}"), file=sys.stderr)


def answers_note(s) -> list[str]:
    """What ``palsy fit --registry``/``--registry-counts`` says: answers do not use this fit."""
    named = "names no registry" if not s.used else "names " + ", ".join(p.name for p in (*s.rows, *s.counts))
    where = s.path or "priors/registry.yaml"
    return [f"note: answers (posterior, report, serve) use the registry {where} names; it {named}. This fit, with "
            f"the files given here, is cached for palsy fit and palsy check --registry only: to answer with it, name "
            f"these files in {where} (rows: or counts:) and run palsy fit without --registry"]


def fit_lines(meta: dict) -> list[str]:
    """What ``palsy fit`` prints about the registry of a fit (nothing without one)."""
    reg = meta.get("registry") or {}
    if not reg.get("used"):
        return []
    rows = reg["rows"]
    out = [f"registry: {rows.get('fitted', 0)} rows in the fit from {len(reg['sites'])} site(s) "
           f"({rows.get('undetermined', 0)} undetermined; {rows.get('other', 0)} with a cause the model does not have, "
           f"{rows.get('out_of_scope', 0)} outside the population: not in the fit); {reg['censored_strata']} censored strata"]
    for c, s in reg["cause_shares"].items():
        a, b = s["prior"], s["posterior"]
        out.append(f"  P({c}) before any finding: prior {100 * a['mean']:.1f}% ({100 * a['lower']:.1f}-{100 * a['upper']:.1f}) "
                   f"-> posterior {100 * b['mean']:.1f}% ({100 * b['lower']:.1f}-{100 * b['upper']:.1f}); "
                   f"90% interval x{s['width_ratio']:.2f}")
    o = reg["other"]["share"]
    out.append(f"  share of palsies whose cause the model does not have: {100 * o['mean']:.1f}% "
               f"({100 * o['lower']:.1f}-{100 * o['upper']:.1f})")
    return out
