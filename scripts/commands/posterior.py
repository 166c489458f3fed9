"""``palsy posterior``: the probability of infiltration for a patient, and why."""

from __future__ import annotations

import argparse
import sys

from model import answer as A
from reports import wording as W
from scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patient", metavar="FILE.yaml", help="patient file (DESIGN §2); flags override it")
    common.add_finding_arguments(p)
    common.add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object (DESIGN §7)")


def run(args: argparse.Namespace) -> int:
    patient = common.patient_from(args, args.patient)
    draws = common.load_draws(args)
    ans = A.answer(patient, draws, ci=args.ci, pretest=args.pretest)
    sys.stdout.write(ans.to_json() + "\n" if args.json else table(ans))
    return 0


def table(ans: A.Answer) -> str:
    """The readable table: headline, prior, each finding's factor, next tests."""
    d = ans.to_dict()
    ci = round(100 * ans.ci)
    lines = [f"Patient: {ans.patient.id}" + (f" - {ans.patient.description}" if ans.patient.description else "")]
    if ans.patient.at_diagnosis:
        lines.append("NOTE: a palsy that led to the leukemia diagnosis is outside the model's population; "
                     "answered as not in remission.")
    p, pp = d["probability"], d["prior_probability"]
    lines += [
        f"P(leukemic infiltration | findings): {W.probability_with_interval(p)}  [mean; median {W.percent(p['median'])}]",
        f"  {W.words(p['mean'])}",
        f"Base rate{' (--pretest)' if ans.pretest is not None else ''}: {W.probability_with_interval(pp)}  [mean]",
        "",
        f"How each finding shifts the odds (sequential, clinical order; median factor, {ci}% CrI):",
    ]
    if not d["contributions"]:
        lines.append("  (no findings given: the answer is the base rate)")
    for c, s in zip(d["contributions"], d["shapley"], strict=True):
        lr = c["log_lr"]
        label = f"LP {c['index']} {c['value']}" if c["finding"] == "csf" else f"{c['finding']}: {c['value']}"
        lines.append(f"  {label:<52} {W.factor(lr['median']):>9}  ({W.factor(lr['lower'])} to {W.factor(lr['upper'])})"
                     f"   Shapley {W.factor(s['log_lr']['median'])}")
    if d["next_tests"]:
        lines += ["", "What the next test could do (probability of each result; P(infiltration) after it):"]
        for t in d["next_tests"]:
            parts = [f"{o['result']} {W.percent(o['probability']['mean'])} -> {W.percent(o['probability_after']['mean'])}"
                     for o in t["outcomes"]]
            lines.append(f"  {t['test']:<12} " + "; ".join(parts))
    m = d["model"]
    lines += ["", f"Model: {m['variant']} variant, {m['draws']} draws, evidence {m['evidence_hash'][:12]}, "
                  f"version {m['version']}, diagnostics {'ok' if m['diagnostics_ok'] else 'NOT OK'}"]
    if d["left_out_case"]:
        lo = d["left_out_case"]
        lines.append(f"This patient is library case {lo['case']}: answered with it left out "
                     f"(PSIS, Pareto k {lo['pareto_k']:.2f}{'' if lo['reliable'] else ', UNRELIABLE'}).")
    lines.append("Other causes (vincristine, VZV, GBS, GVHD, otomastoiditis) are not modelled. "
                 "This supports and does not replace clinical judgment.")
    return "\n".join(lines) + "\n"
