"""``palsy check``: the statistician's report (docs/design.md §6) as self-contained HTML, plus its numbers as JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from palsy.model import cache as C
from palsy.model import findings as F
from palsy.model import paths, variants
from palsy.reports import terminal as TL
from palsy.scripts.commands import common, registry

CHECKOUT = paths.checkout()
#: The SBC results and the hallmark vignettes are files of a checkout (an installed package has none).
DEFAULT_SBC = ((CHECKOUT / "docs" / "sbc" / "sbc_results.json", CHECKOUT / "docs" / "sbc" / "subtype" / "sbc_results.json")
               if CHECKOUT else ())
DEFAULT_VIGNETTES = str(CHECKOUT / "tests" / "fixtures" / "vignettes") if CHECKOUT else ""
#: The value of --vignettes and --sbc that means none (an empty value is refused, as for every flag).
NONE = "none"


#: --quick refits this many expert judgments (each at its four plausible alternatives and the extreme flat prior)
#: and references: those PSIS says move the answers most.
QUICK = (1, 1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=".", help="folder for check.html and check.json (default: current folder)")
    p.add_argument("--priors", help="evidence folder (default: the repository's priors/)")
    p.add_argument("--patients", default=str(paths.patients()),
                   help="folder of patient files whose answers are tested for sensitivity (default patients/)")
    p.add_argument("--variants", default=",".join(variants.VARIANTS),
                   help=f"variants to check, comma-separated (default {','.join(variants.VARIANTS)})")
    p.add_argument("--sensitivity-variant", default=variants.DEFAULT_VARIANT,
                   help=f"variant whose answers are tested for sensitivity (default {variants.DEFAULT_VARIANT})")
    p.add_argument("--vignettes", default=DEFAULT_VIGNETTES,
                   help="folder of hallmark vignettes (key `patient`) also tested for sensitivity "
                        f"(default tests/fixtures/vignettes; {NONE} for none)")
    p.add_argument("--quick", action="store_true",
                   help="a smaller run: exact refits (few draws) of only the expert judgment (at its "
                        "four plausible alternatives and the flat extreme) and the reference that move P(infiltration) "
                        "most by PSIS, one leave-one-study-out refit; every other row by PSIS, judgments' rows that "
                        "PSIS cannot give reliably dropped and counted, rate factors screened (it says how many and why). "
                        "`make test` runs no refit of it: only `make test-heavy` runs `palsy check --quick` (with "
                        "--no-refit) and the quick refits")
    p.add_argument("--no-refit", action="store_true", help="no refits at all: PSIS only (unreliable ones flagged)")
    p.add_argument("--sbc", default=",".join(str(x) for x in DEFAULT_SBC),
                   help=f"SBC results files written by scripts/sbc.py, comma-separated (default: docs/sbc/, both variants; "
                        f"{NONE} for none)")
    p.add_argument("--refit-draws", type=int, default=500, help="draws per chain of each sensitivity refit (default 500)")
    p.add_argument("--scheduler", default="local",
                   help="where the refits run, each a Dask task: local (a dask.distributed LocalCluster of worker "
                        "processes on this machine, default), serial (this process, one after the other) or the "
                        "address of a running Dask scheduler, e.g. tcp://host:8786 (docs/heavy_checks.md)")
    registry.add_fit_arguments(p)  # the registry's rows: the fits, the site-level check and the tool's calibration


def _bad(problem: str) -> F.InputError:
    return F.InputError([problem], "command line")


def run(args: argparse.Namespace) -> int:
    from palsy.reports.output import check_writable

    out = check_writable(common.out_dir(args))  # before the fits and the refits (minutes)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in names + [args.sensitivity_variant]:
        if v not in variants.VARIANTS:
            raise _bad(f"--variants/--sensitivity-variant: {v!r} is not allowed; allowed: {', '.join(variants.VARIANTS)}")
    if args.sensitivity_variant not in names:
        raise _bad(f"--sensitivity-variant: {args.sensitivity_variant!r} must be one of --variants ({', '.join(names)})")
    if args.refit_draws < 50:
        raise _bad(f"--refit-draws: {args.refit_draws} is not allowed; give a whole number >= 50")
    pdir = Path(args.patients)
    if not pdir.is_dir():
        raise FileNotFoundError(f"--patients: {pdir} is not a folder")
    vignettes = "" if args.vignettes == NONE else args.vignettes
    if vignettes and not Path(vignettes).is_dir():  # before PyMC's and ArviZ's imports (seconds)
        raise FileNotFoundError(f"--vignettes: {vignettes} is not a folder")
    sbc = [Path(x) for x in ("" if args.sbc == NONE else args.sbc).split(",") if x.strip()]
    from palsy.model import criticism, evidence, fit
    from palsy.model.criticism import sensitivity as SE
    from palsy.reports import check as report

    ev = evidence.load(common.priors_dir(args))
    reg_fit, reg_rows = registry.fit_registry(args, ev)
    patients = criticism.load_patients(pdir)
    if vignettes:
        patients += SE.load_vignettes(Path(vignettes))
    posts = {}
    progress = common.progress_reporter(args)
    say = progress or (lambda message: None)
    for v in names:
        say(f"check: posterior of the {v} variant")
        posts[v] = fit.posterior(v, ev, C.Settings(), progress=progress, registry=reg_fit).draws
    plain = None
    if "independent" in names:
        say("check: the plain configuration (no random effects, selection or orderings)")
        plain = fit.posterior("independent", ev, C.Settings(synthesis=False), registry=None).draws  # conjugate
    n_refit = min(args.refit_draws, 100) if args.quick else args.refit_draws
    rs = C.Settings(draws=n_refit, tune=n_refit, chains=2, thin=1)  # as model.criticism.run's refits
    validation = common.priors_dir(args) / "validation.yaml"
    say("check: predictive checks, LOO, psense, heterogeneity, selection, answer sensitivity (refits: minutes)")
    from palsy.model.criticism import heavy

    with heavy.runner("serial" if args.no_refit else args.scheduler) as run_:
        say(f"check: refits on {run_.describe}")
        results = criticism.run_all(ev, posts, patients, sensitivity_variant=args.sensitivity_variant,
                                    refit=not args.no_refit, refit_settings=rs, plain=plain,
                                    quick=QUICK if args.quick else None, loo_refits=1 if args.quick else None,
                                    validation_path=validation if validation.exists() else None, runner=run_,
                                    source_patients=[p.id for p in criticism.load_patients(pdir)])
    from palsy.model.criticism import registry as CRG

    say("check: the registry (the fit's use of it, site-level check, the tool's calibration)")
    results["registry"] = CRG.report(posts[args.sensitivity_variant], reg_rows)
    html, js = report.write(results, out, sbc_path=sbc)
    if args.quick and results.get("sensitivity"):  # what the quick run left out, and why
        for line in report.dropped_lines(results["sensitivity"]):
            print(TL.line(line))
    print(TL.line(f"wrote {html}"))
    print(TL.line(f"wrote {js}"))
    return 0
