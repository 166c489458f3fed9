"""``palsy teach``: the teaching lesson (figures, HTML) and the interactive page (DESIGN §6).

Uses the variant of ``--variant`` (the same default as ``palsy posterior``) throughout, and the
subtype variant for the part on repeated LPs (the interactive page offers both variants).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from palsy.model import decision, evidence, guidance, paths, variants
from palsy.model import teach as T
from palsy.reports import terminal as TL
from palsy.scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/teach", metavar="DIR", help="output folder (default out/teach)")
    p.add_argument("--patients", default=str(paths.patients()), metavar="DIR",
                   help="folder of patient files to walk through (default: the repository's patients/)")
    common.add_model_arguments(p, ci=False)
    p.add_argument("--ci", type=common._probability("ci"), default=0.9, help="credible interval mass (default 0.9)")
    p.add_argument("--tree-pretest", type=common._probability("tree-pretest"), default=0.3, metavar="P",
                   help="pretest probability of the natural-frequency trees (default 0.3)")


def run(args: argparse.Namespace) -> int:
    from palsy.reports import teaching as R
    from palsy.reports.output import check_writable

    out = check_writable(common.out_dir(args))  # before the fits and the lesson (minutes on a cold cache)
    folder = Path(args.patients)
    if not folder.is_dir():
        raise FileNotFoundError(f"--patients: {folder} is not a folder")
    patients = [common.patient_from(argparse.Namespace(), str(f)) for f in sorted(folder.glob("*.yaml"))]
    say = common.progress_reporter(args) or (lambda message: None)
    draws = common.load_draws(args)
    say("teach: the lesson's scenarios over every draw")
    others = [v for v in variants.VARIANTS if v != args.variant]
    extra = {v: common.load_draws(args, variant=v) for v in others}
    subtype = draws if args.variant == "subtype" else extra.get("subtype")
    lesson = T.lesson(draws, patients=patients, ci=args.ci, subtype=subtype, tree_pretest=args.tree_pretest)
    models = [T.page_tables(draws)] + [T.page_tables(d) for d in extra.values()]
    # the page decides and lists actions as `palsy posterior` does: the same files, loaded the same way
    pdir = common.priors_dir(args)
    say("teach: the interactive page and the figures")
    rules = T.page_rules(decision.load(pdir), guidance.load(pdir, draws.causes))
    paths = R.write(out, lesson, models, rules=rules, references=evidence.load(pdir).references, ci=args.ci)
    print(TL.line(f"lesson: {paths[R.LESSON_NAME]}"))
    print(TL.line(f"interactive page: {paths[R.PAGE_NAME]}"))
    print(TL.line(f"figures: {out / 'figures'} ({sum(1 for k in paths if k.endswith('.png'))} PNG files)"))
    sys.stdout.flush()
    return 0
