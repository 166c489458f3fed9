"""``palsy registry``: a hospital's registry of adjudicated palsies (docs/registry.md).

    palsy registry check FILE               validate (every problem named by row and field); selection warnings
    palsy registry summary FILE [--json]    counts by cause, site, year, finding; completeness
    palsy registry export-counts FILE --out COUNTS.json [--threshold N]
                                            per-stratum counts to share, small cells suppressed
    palsy registry from-feedback LOG ADJUDICATION --site CODE --out REGISTRY.yaml
                                            the service's feedback log and later adjudications as registry rows
    palsy registry from-feedback LOG --template ADJUDICATION.csv
                                            the adjudication form: one line per answer the service gave

Exit status 0 (warnings are printed and do not fail), 2 for bad input (nothing written).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from palsy.reports import terminal as T
from palsy.scripts.commands import common

ACTIONS = ("check", "summary", "export-counts", "from-feedback")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=ACTIONS, help="what to do with the registry")
    p.add_argument("file", help="the registry file (CSV or YAML); for from-feedback the service's feedback log")
    p.add_argument("adjudication", nargs="?", default=None,
                   help="from-feedback: the adjudication file (CSV or YAML: card, final_cause, other_cause, "
                        "established_by, follow_up_months)")
    p.add_argument("--priors", help="evidence folder (default: the repository's priors/)")
    p.add_argument("--json", action="store_true", help="summary/check: print one JSON object")
    p.add_argument("--out", help="export-counts: the counts file to write; from-feedback: the registry file to write")
    p.add_argument("--threshold", type=common.whole_number("threshold", 1, 1000), default=None,
                   help="export-counts: suppress cells of fewer patients (default: priors/registry.yaml's, 5)")
    p.add_argument("--site", help="from-feedback: the site code of the rows")
    p.add_argument("--template", help="from-feedback: write the adjudication form (CSV) for the log's answers")


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
    reg = RG.read(args.file, ev.schema, ev.causes)
    if args.action == "export-counts":
        return _export(args, reg, ev, settings)
    from palsy.model import registry_summary as RS

    warns = RS.selection_warnings(reg, RS.rate_arrays(ev), ev.structure, settings.site_sigma, settings.selection_tail)
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


def _export(args: argparse.Namespace, reg, ev, settings) -> int:
    from palsy.model import registry_counts as RC
    from palsy.reports.output import check_writable, write_all

    if args.out is None:
        raise _bad("export-counts: give --out COUNTS.json (the file to share)")
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise _bad(f"--out: {args.out!r} is a folder; give the counts file's path")
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
        path = Path(args.template)
        check_writable(path.parent if str(path.parent) else Path("."), "--template")
        log = FB.read_log(args.file, ev.schema, ev.causes)
        write_all(path.parent if str(path.parent) else Path("."), {path.name: FB.template(log)})
        print(T.line(f"wrote {common.shown_path(path)}: {len(log)} answers to adjudicate"))
        return 0
    if args.adjudication is None or args.out is None or args.site is None:
        raise _bad("from-feedback: give the log, the adjudication file, --site CODE and --out REGISTRY.yaml "
                   "(or --template FORM.csv for the adjudication form)")
    path = Path(args.out)
    check_writable(path.parent if str(path.parent) else Path("."))
    log = FB.read_log(args.file, ev.schema, ev.causes)
    reg = FB.rows(log, FB.read_adjudication(args.adjudication, ev.causes), args.site, ev.schema, ev.causes)
    write_all(path.parent if str(path.parent) else Path("."), {path.name: FB.registry_bytes(reg)})
    print(T.line(f"wrote {common.shown_path(path)}: {len(reg.rows)} registry rows"))
    return 0


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
    if given:
        reg = RF.from_files(ev, rows=args.registry or [], counts=args.registry_counts or [])
        rows = [RG.read(f, ev.schema, ev.causes) for f in args.registry or []]
        return reg, (RG.combine(rows) if rows else None)
    s = RG.settings(ev.directory)
    rows = [RG.read(f, ev.schema, ev.causes) for f in s.rows]
    return fit.FROM_PRIORS, (RG.combine(rows) if rows else None)


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
