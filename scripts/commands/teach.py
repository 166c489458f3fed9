"""``palsy teach``: the ten-minute lesson with its appendix, the two-page handout (HTML and PDF), the cases
to solve and the interactive page (docs/design.md §6, issue 24).

Uses the variant of ``--variant`` (the same default as ``palsy posterior``) for the lesson, the handout and
the cases; the interactive page offers every variant. The handout's PDF is printed by Chromium in a
helper process started first, so that its start overlaps the lesson's answers (:mod:`palsy.reports.pdf`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from palsy.model import answer as A
from palsy.model import decision, evidence, guidance, paths, variants
from palsy.model import teach as T
from palsy.reports import terminal as TL
from palsy.scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/teach", metavar="DIR", help="output folder (default out/teach)")
    p.add_argument("--patients", default=str(paths.patients()), metavar="DIR",
                   help="folder of patient files to walk through in the appendix (default: the repository's patients/)")
    common.add_model_arguments(p, ci=False)
    p.add_argument("--ci", type=common.probability_flag("ci"), default=0.9, help="credible interval mass (default 0.9)")
    p.add_argument("--no-pdf", action="store_true", help="write the handout as HTML only (no Chromium)")


def run(args: argparse.Namespace) -> int:
    from palsy.reports import pdf
    from palsy.reports import teaching as R
    from palsy.reports.labels import Labels
    from palsy.reports.output import check_writable

    out = check_writable(common.out_dir(args))  # before the fits and the lesson (minutes on a cold cache)
    folder = Path(args.patients)
    if not folder.is_dir():
        raise FileNotFoundError(f"--patients: {folder} is not a folder")
    say = common.progress_reporter(args) or (lambda message: None)
    with pdf.Printer(helper=not args.no_pdf) as printer:
        patients = [common.patient_from(argparse.Namespace(priors=args.priors), str(f)) for f in sorted(folder.glob("*.yaml"))]
        draws = common.load_draws(args)
        others = {v: common.load_draws(args, variant=v) for v in variants.VARIANTS if v != args.variant}
        pdir = common.priors_dir(args)
        ev = evidence.load(pdir)
        teaching = T.load(pdir, draws.schema, ev.cases)
        labels = Labels.of(draws)
        say("teach: the lesson's scenarios (the answers of its patients)")
        lesson = T.lesson(draws, teaching, patients=patients, ci=args.ci, other=next(iter(others.values()), None))
        actions = guidance.load(pdir, draws.causes, draws.schema)
        escalating = R.escalations(actions, ev.references)
        handout = R.handout_html(lesson["core"], labels, escalating, teaching.glossary)
        pdf_bytes = None if args.no_pdf else printer.submit(handout)
        say("teach: the cases and the interactive page")
        cases = {c.id: c.patient for c in teaching.cases}
        cases_ctx = R.cases_context(lesson["cases"], labels, ev.references, cases, teaching.about_the_same)
        presets = [{"id": teaching.typical.id, "title": "The lesson's patient", "cause": "",
                    "fragment": R.fragment(teaching.typical.replace(id=""))},
                   # the classroom's one-at-a-time reveal reaches the lesson's negative LPs from this one
                   {"id": f"{teaching.typical.id}-lps", "title": R.LPS_PRESET_TITLE, "cause": "",
                    "fragment": R.fragment(T.typical_with_lps(teaching))}]
        presets += [{"id": c["id"], "title": c["title"], "cause": c["cause"], "fragment": c["fragment"]} for c in cases_ctx]
        models = []
        for d in (draws, *others.values()):
            t = A.Tables(d)
            weights = {pid: A.answer(p, d, tables=t, shapley=False, rests_on=False).weights for pid, p in cases.items()
                       if d.case_index(pid) is not None}
            models.append(T.page_tables(d, t, weights=weights))
        rules = R.page_rules(actions, ev.references, guidance.PAGE_ONE, decision.load(pdir, draws.causes))
        files = {
            R.LESSON_NAME: R.lesson_html(lesson, labels, ev.references, escalating, teaching.glossary).encode("utf-8"),
            R.HANDOUT_NAME: handout.encode("utf-8"),
            R.CASES_NAME: R.cases_html(cases_ctx, args.ci, teaching.about_the_same, teaching.glossary).encode("utf-8"),
            R.PAGE_NAME: R.page_html(models, schema=T.page_schema(draws.schema), labels=R.page_labels(labels, draws.causes),
                                     rules=rules, presets=presets, ci=args.ci, same_within=teaching.about_the_same,
                                     not_modelled=lesson["not_modelled"], glossary=teaching.glossary).encode("utf-8"),
            "lesson.json": json.dumps(R.to_jsonable(lesson), indent=1, allow_nan=False).encode("utf-8"),
        }
        # the clinician report of the lesson's patient, which the lesson's A3 points to (it had pointed to a report
        # palsy teach did not write): answered as palsy report answers it, HTML only
        files[R.TYPICAL_REPORT_NAME] = _typical_report(args, teaching.typical, draws, ev,
                                                       other=next(iter(others.values()), None))
        if teaching.session is not None:
            files[R.GUIDE_NAME] = R.guide_html(teaching.session, cases_ctx, args.ci, teaching.about_the_same,
                                               core=lesson["core"], patient_with_lps=T.typical_with_lps(teaching),
                                               labels=labels).encode("utf-8")
        if pdf_bytes is not None:
            files[R.HANDOUT_PDF] = pdf_bytes.result()
        written = R.write(out, files)
    for name in (R.LESSON_NAME, R.HANDOUT_PDF if not args.no_pdf else R.HANDOUT_NAME, R.CASES_NAME, R.PAGE_NAME,
                 R.GUIDE_NAME, R.TYPICAL_REPORT_NAME):
        if name not in written:
            continue
        print(TL.line(f"{name}: {common.shown_path(written[name])}"))
    sys.stdout.flush()
    return 0


def _typical_report(args: argparse.Namespace, patient, draws, ev, other=None) -> bytes:  # noqa: ANN001
    """The clinician report (HTML) of ``patient``, with the options ``palsy report`` gives it by default, and the
    other variant's draws this command loaded (the report had said the other variant was not computed, beside a
    lesson that prints its numbers: a teacher's review, s16)."""
    from palsy.reports import context, render
    from palsy.scripts.commands import report

    options = argparse.Namespace(**{**vars(args), "pretest": None, "causes": None, "thresholds": None})
    chosen = report.answer_options(options, draws)
    if other is not None:
        chosen["other"] = other
    answer = report.answer_for(options, patient, draws, chosen)
    return render.html(context.build(answer, ev)).encode("utf-8")
