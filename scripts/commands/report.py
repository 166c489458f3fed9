"""``palsy report``: the clinician report (HTML and PDF) for a patient file (DESIGN §6).

The report path stays light: a warm cache, numpy, matplotlib (figures), Jinja2 and WeasyPrint (the PDF
from the same HTML); no PyMC or ArviZ. The decision settings (priors/decision.yaml) and the actions
(priors/actions.yaml) are loaded exactly as ``palsy posterior`` loads them, so page 1 says what the JSON
says. Everything is validated and rendered in memory before anything is written to ``--out``.
"""

from __future__ import annotations

import argparse
import sys

from reports import terminal as T
from scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patient", metavar="PATIENT.yaml", help="patient file (DESIGN §2); flags override it")
    p.add_argument("--out", default="report", metavar="DIR", help="folder for the report files (default: ./report)")
    p.add_argument("--format", default="html,pdf", metavar="FORMATS",
                   help="comma-separated: html, pdf (default html,pdf)")
    common.add_finding_arguments(p)
    common.add_model_arguments(p)
    p.add_argument("--thresholds", metavar="LOW,HIGH", help="the decision's pair of thresholds on P(infiltration) "
                                                           "for this report (default: from priors/decision.yaml)")


def answer_for(args: argparse.Namespace, patient, draws):  # noqa: ANN001, ANN201
    """The answer as ``palsy posterior`` computes it: decision settings and actions from ``priors/``."""
    from model import answer as A
    from model import decision, guidance

    thresholds = decision.parse_thresholds(args.thresholds) if getattr(args, "thresholds", None) else None
    pdir = common.priors_dir(args)
    return A.answer(patient, draws, ci=getattr(args, "ci", 0.9), pretest=getattr(args, "pretest", None),
                    causes=common.causes_from(args, draws), decision_settings=decision.load(pdir),
                    thresholds=thresholds, guidance=guidance.load(pdir, draws.causes))


def run(args: argparse.Namespace) -> int:
    from model import evidence as E
    from reports import context, render

    formats = render.parse_formats(args.format)
    out = common.out_dir(args)
    patient = common.patient_from(args, args.patient)
    draws = common.load_draws(args)
    ev = E.load(common.priors_dir(args))
    ctx = context.build(answer_for(args, patient, draws), ev)
    for path in render.write(ctx, out, formats):
        print(T.line(str(path)))
    if patient.at_diagnosis:
        print("palsy report: note: this palsy led to the leukemia diagnosis, outside the model's population; "
              "the report says so.", file=sys.stderr)
    return 0
