"""``palsy check``: the statistician's report (DESIGN §6) as self-contained HTML, plus its numbers as JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model import cache as C
from model import variants
from scripts.commands import common

DEFAULT_SBC = (common.REPO / "docs" / "sbc" / "sbc_results.json", common.REPO / "docs" / "sbc" / "subtype" / "sbc_results.json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=".", help="folder for check.html and check.json (default: current folder)")
    p.add_argument("--priors", help="evidence folder (default: the repository's priors/)")
    p.add_argument("--patients", default=str(common.REPO / "patients"),
                   help="folder of patient files whose answers are tested for sensitivity (default patients/)")
    p.add_argument("--variants", default=",".join(variants.VARIANTS),
                   help=f"variants to check, comma-separated (default {','.join(variants.VARIANTS)})")
    p.add_argument("--sensitivity-variant", default=variants.DEFAULT_VARIANT,
                   help=f"variant whose answers are tested for sensitivity (default {variants.DEFAULT_VARIANT})")
    p.add_argument("--quick", action="store_true",
                   help="no refits: w_case and source removals by PSIS only (unreliable ones flagged)")
    p.add_argument("--sbc", default=",".join(str(x) for x in DEFAULT_SBC),
                   help="SBC results files written by scripts/sbc.py, comma-separated (default: docs/sbc/, both variants)")
    p.add_argument("--refit-draws", type=int, default=500, help="draws per chain of each sensitivity refit (default 500)")


def run(args: argparse.Namespace) -> int:
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in names + [args.sensitivity_variant]:
        if v not in variants.VARIANTS:
            raise ValueError(f"--variants/--sensitivity-variant: {v!r} is not allowed; allowed: {', '.join(variants.VARIANTS)}")
    if args.sensitivity_variant not in names:
        raise ValueError(f"--sensitivity-variant: {args.sensitivity_variant!r} must be one of --variants ({', '.join(names)})")
    if args.refit_draws < 50:
        raise ValueError(f"--refit-draws: {args.refit_draws} is not allowed; give a whole number >= 50")
    pdir = Path(args.patients)
    if not pdir.is_dir():
        raise FileNotFoundError(f"--patients: {pdir} is not a folder")
    from model import criticism, evidence, fit
    from reports import check as report

    ev = evidence.load(common.priors_dir(args))
    patients = criticism.load_patients(pdir)
    posts = {}
    for v in names:
        print(f"palsy check: posterior of the {v} variant...", file=sys.stderr)
        posts[v] = fit.posterior(v, ev, C.Settings()).draws
    rs = C.Settings(draws=args.refit_draws, tune=args.refit_draws, chains=2)
    print("palsy check: predictive checks, LOO, psense, answer sensitivity...", file=sys.stderr)
    results = criticism.run_all(ev, posts, patients, sensitivity_variant=args.sensitivity_variant,
                                refit=not args.quick, refit_settings=rs)
    html, js = report.write(results, Path(args.out), sbc_path=[Path(x) for x in args.sbc.split(",") if x])
    print(f"wrote {html}")
    print(f"wrote {js}")
    return 0
