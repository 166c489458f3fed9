"""``palsy report``: the clinician report (HTML and PDF) for one patient file or several (docs/design.md §6).

The report path stays light: a warm cache, numpy, matplotlib (figures), Jinja2 and headless Chromium (the PDF
from the same HTML); no PyMC or ArviZ. The decision settings (priors/decision.yaml) and the actions
(priors/actions.yaml) are loaded exactly as ``palsy posterior`` loads them, so page 1 says what the JSON
says. Every patient is read and answered before anything is drawn, and every report is rendered in memory
before anything is written to ``--out``: bad input in any file leaves nothing written. The PDFs are printed
by a helper process started once the input is valid (:class:`palsy.reports.pdf.Printer`), so that its start of
Chromium overlaps the figures and the HTML.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from palsy.reports import terminal as T
from palsy.scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("patients", nargs="+", metavar="PATIENT.yaml",
                   help="patient file (docs/design.md §2), or several (a report each); the flags apply to every one")
    p.add_argument("--out", default="report", metavar="DIR",
                   help="folder for the report files, named by patient id (default: ./report)")
    p.add_argument("--format", default="html,pdf", metavar="FORMATS",
                   help="comma-separated: html, pdf (default html,pdf)")
    common.add_finding_arguments(p)
    common.add_model_arguments(p)
    p.add_argument("--thresholds", metavar="LOW,HIGH", help="the decision's pair of thresholds on P(infiltration) "
                                                           "for this report (default: from priors/decision.yaml)")


def answer_options(args: argparse.Namespace, draws) -> dict:  # noqa: ANN001
    """The answer's options from the flags, checked (an InputError or ValueError naming the flag), with the
    decision settings and actions of ``priors/``."""
    from palsy.model import decision, guidance

    pdir = common.priors_dir(args)
    return {"ci": getattr(args, "ci", 0.9), "pretest": getattr(args, "pretest", None),
            "causes": common.causes_from(args, draws),
            "thresholds": decision.parse_thresholds(args.thresholds) if getattr(args, "thresholds", None) else None,
            "decision_settings": decision.load(pdir), "guidance": guidance.load(pdir, draws.causes),
            "other": common.other_draws(args, draws)}


def answer_for(args: argparse.Namespace, patient, draws, options: dict | None = None):  # noqa: ANN001, ANN201
    """The answer as ``palsy posterior`` computes it (``options`` from :func:`answer_options`)."""
    from palsy.model import answer as A

    return A.answer(patient, draws, **(options if options is not None else answer_options(args, draws)))


def run(args: argparse.Namespace) -> int:
    from palsy.model import evidence as E
    from palsy.reports import context, render
    from palsy.reports.output import check_writable
    from palsy.reports.pdf import Printer

    formats = render.parse_formats(args.format)
    out = check_writable(common.out_dir(args))  # before any work: an --out that cannot be written is bad input
    patients = [common.patient_from(args, file) for file in args.patients]
    render.file_stems([p.id for p in patients], args.patients)  # two patients, one id: bad input, before any work
    draws = common.load_draws(args)
    options = answer_options(args, draws)
    ev = E.load(common.priors_dir(args))
    # the input is valid: the PDF helper starts Chromium while the answers, figures and HTML are made
    with Printer() if "pdf" in formats else contextlib.nullcontext() as printer:
        ctxs = [context.build(answer_for(args, patient, draws, options), ev) for patient in patients]
        paths = render.write(ctxs, out, formats, printer)
    for path in paths:
        print(T.line(str(path)))
    for patient in patients:
        if patient.at_diagnosis:
            print(T.line(f"palsy report: note: {patient.id}: this palsy led to the leukemia diagnosis, outside the "
                         f"model's population; the report says so."), file=sys.stderr)
    return 0
