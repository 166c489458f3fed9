"""``palsy report``: the clinician report (HTML and PDF) for a patient file (DESIGN §6).

The report path stays light: a warm cache, numpy, matplotlib and Jinja2; no PyMC or ArviZ.
Everything is validated and rendered in memory before anything is written to ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patient", metavar="PATIENT.yaml", help="patient file (DESIGN §2); flags override it")
    p.add_argument("--out", default="report", metavar="DIR", help="folder for the report files (default: ./report)")
    p.add_argument("--format", default="html,pdf", metavar="FORMATS",
                   help="comma-separated: html, pdf (default html,pdf)")
    common.add_finding_arguments(p)
    common.add_model_arguments(p)


def run(args: argparse.Namespace) -> int:
    from model import answer as A
    from model import evidence as E
    from reports import context, render

    formats = render.parse_formats(args.format)
    patient = common.patient_from(args, args.patient)
    draws = common.load_draws(args)
    ev = E.load(common.priors_dir(args))
    ans = A.answer(patient, draws, ci=args.ci, pretest=args.pretest, causes=common.causes_from(args, draws))
    ctx = context.build(ans, ev)
    for path in render.write(ctx, args.out, formats):
        print(path)
    if patient.at_diagnosis:
        print("palsy report: note: this palsy led to the leukemia diagnosis, outside the model's population; "
              "the report says so.", file=sys.stderr)
    return 0
