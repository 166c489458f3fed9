"""``palsy posterior``: the differential of a facial palsy in a patient with leukaemia, and why."""

from __future__ import annotations

import argparse
import json
import sys

from palsy.model import answer as A
from palsy.model import decision, guidance
from palsy.reports import terminal as T
from palsy.reports import wording as W
from palsy.scripts.commands import common


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patient", metavar="FILE.yaml", help="patient file (docs/design.md §2); flags override it")
    p.add_argument("--fhir", metavar="BUNDLE.json", help="a FHIR R4 Bundle instead of a patient file, mapped through "
                                                        "the evidence folder's fhir_map.yaml; flags override it")
    common.add_finding_arguments(p)
    common.add_model_arguments(p)
    p.add_argument("--thresholds", metavar="LOW,HIGH", help="the decision's pair of thresholds on P(infiltration) "
                                                           "for this query (default: from priors/decision.yaml)")
    p.add_argument("--json", action="store_true", help="print one JSON object (docs/design.md §7)")


def run(args: argparse.Namespace) -> int:
    mapping = common.read_fhir_file(args.fhir, common.priors_dir(args)) if args.fhir is not None else None
    patient = common.patient_from(args, args.patient, mapping)
    draws = common.load_draws(args)
    thresholds = decision.parse_thresholds(args.thresholds) if args.thresholds else None
    pdir = common.priors_dir(args)
    ans = A.answer(patient, draws, ci=args.ci, pretest=args.pretest, causes=common.causes_from(args, draws),
                   decision_settings=decision.load(pdir, draws.causes), thresholds=thresholds,
                   guidance=guidance.load(pdir, draws.causes, draws.schema), other=common.other_draws(args, draws),
                   leave_out=mapping is None)  # a record is never a library case (model/fhir.py), whatever its id
    if mapping is not None:  # what the record did not say, and what was not read
        from palsy.model import fhir

        sys.stderr.write(T.lines([f"palsy posterior: not found in the record: {fhir.finding_lines(mapping.not_found)}"]
                                 + [f"palsy posterior: {n}" for n in mapping.notes]) + "\n")
    if args.json and mapping is not None:
        sys.stdout.write(json.dumps({**ans.to_dict(), "fhir": {"not_found": mapping.not_found, "ignored": mapping.ignored,
                                                               "not_in_schema": mapping.not_in_schema,
                                                               "notes": mapping.notes, "onset": mapping.onset}}) + "\n")
        return 0
    sys.stdout.write(ans.to_json() + "\n" if args.json else table(ans))
    return 0


def _label(finding: str, index: int | None, value: str | None) -> str:
    return f"LP {index} {value}" if index is not None else f"{finding}: {value}"


def ci_label(ci: float) -> str:
    """The interval's mass in percent with as many digits as it needs: 0.9 -> '90', 0.955 -> '95.5',
    0.999999 -> '99.9999' (never rounded to '100' or '0')."""
    return format(100 * ci, ".10g")


def _with_interval(s: dict, ci: str) -> str:
    """'84.0% (90% CrI 61.2% to 95.3%)' with the interval's label of :func:`ci_label`."""
    return f"{W.percent(s['mean'])} ({ci}% CrI {W.percent(s['lower'])} to {W.percent(s['upper'])})"


def table(ans: A.Answer) -> str:
    """The readable answer: warnings first, then the differential, then the contributions.

    Ids, descriptions and every other text from files are printed through :mod:`palsy.reports.terminal`:
    each element of ``lines`` is one output line, so no value can add a line or an escape sequence."""
    d = ans.to_dict()
    ci = ci_label(ans.ci)
    lines = [f"Patient: {ans.patient.id}" + (f" - {ans.patient.description}" if ans.patient.description else "")]
    for note in d["scope_notes"]:
        lines.append(f"OUT OF SCOPE: {note}")
    atyp = d["atypical"]
    edge = " (within Monte Carlo error of the threshold)" if atyp["within_mc_error"] else ""
    # the flag compares the unrounded tail with the threshold: written with the digits that tell them apart
    tail, threshold = W.apart(atyp["tail_probability"], atyp["threshold"])
    if atyp["flag"]:
        lines.append(f"ATYPICAL: these findings fit none of the modelled causes well (tail probability "
                     f"{tail}, threshold {threshold}{edge}); consider causes not modelled.")
    elif atyp["within_mc_error"]:
        lines.append(f"NEARLY ATYPICAL: these findings are at the edge of what the modelled causes explain (tail "
                     f"probability {tail}, within Monte Carlo error of the threshold {threshold}); consider "
                     f"causes not modelled.")
    for w in d["warnings"]:
        lines.append(f"WARNING: {w}")
    p, pp = d["probability"], d["prior_probability"]
    others = [c for c in ans.causes_weighed if c != A.INFILTRATION]
    peripheral = "" if ans.in_scope or not ans.patient.central else " (only if the palsy is peripheral)"
    lines += [
        f"P(leukemic infiltration | findings){peripheral}: {_with_interval(p, ci)}  "
        f"[mean; median {W.percent(p['median'])}]" + (f"  ({note})" if (note := W.mean_outside(p)) else ""),
        f"  weighed against: {', '.join(others)}",
        (f"  before any finding: {_with_interval(pp, ci)}  [mean]" if ans.pretest is None
         else f"  before any finding (--pretest): {W.pretest_text(ans.pretest)}"),
        "",
        f"The differential (mean, {ci}% CrI; before any finding):",
    ]
    for c in d["causes"]:
        s, s0 = c["probability"], c["prior_probability"]
        lines.append(f"  {c['cause']:<16} {W.percent(s['mean']):>7}  ({W.percent(s['lower'])} to {W.percent(s['upper'])})"
                     f"   prior {W.percent(s0['mean'])}" + (f"  ({note})" if (note := W.mean_outside(s)) else ""))
    lines += ["", f"How each finding shifts the odds of infiltration (sequential, clinical order; "
                  f"geometric-mean factor, {ci}% CrI; Shapley):"]
    if not d["contributions"]:
        lines.append("  (no findings given: the answer is the prior)")
    for c, s in zip(d["contributions"], d["shapley"], strict=True):
        lr = c["log_lr"]
        lines.append(f"  {_label(c['finding'], c['index'], c['value']):<44} {W.factor(lr['mean']):>9}  "
                     f"({W.factor(lr['lower'])} to {W.factor(lr['upper'])})   Shapley {W.factor(s['log_lr']['mean'])}")
    if d["shapley_method"]["method"] == "sampled":
        lines.append(f"  (Shapley values by permutation sampling, Monte Carlo error {d['shapley_method']['mc_error']:.3f} "
                     f"on the log odds)")
    if d["next_tests"]:
        lines += ["", "What the next test could do (probability of each result; P(infiltration) after it; leading cause, "
                  "or causes tied):"]
        for t in d["next_tests"]:
            lines.append(f"  {t['test']}")
            for o in t["outcomes"]:
                lines.append(f"    {o['result']:<34} {W.percent(o['probability']['mean']):>7} -> "
                             f"{W.percent(o['probability_after']['mean']):>7}   "
                             f"{W.leading([o['leading_cause_after'], *o['tied_after']])}")
    if d["actions"]:
        lines += ["", "What to do now (whatever the cause, and what the differential triggers):"]
        lines += [f"  {i}. {a['text']}" for i, a in enumerate(d["actions"], start=1)]
    if d["decision"]:
        lines += ["", *decision_lines(d["decision"])]
    if ans.pretest is not None:
        lines += ["", f"What this answer rests on: {W.RESTS_ON_PRETEST}"]
    if d["rests_on"]:
        lines += ["", f"What this answer rests on: {W.rests_on_sentence(d['rests_on'])}"]
        lines += [f"  {r['source']:<58} {r['kind']:<11} {W.share(r['share']):>4} {W.share_error(r['mc_error']):>4}"
                  for r in d["rests_on"][:6]]
        if len(d["rests_on"]) > 6:
            lines.append(f"  ... {len(d['rests_on']) - 6} smaller parts (--json gives them all)")
        lines.append("  (shares of the variance of the log odds, each ± its Monte Carlo error in percentage points)")
    if (v := W.variants_sentence(d["variants"], d["decision"])):
        lines += ["", f"MODEL UNCERTAINTY: {v}"]
    m = d["model"]
    lines += ["", f"Model: {m['variant']} variant, {m['draws']} draws, evidence {m['evidence_hash'][:12]}, "
                  f"version {m['version']}, diagnostics {'ok' if m['diagnostics_ok'] else 'NOT OK'}"]
    if m["registry"].get("used"):
        reg = m["registry"]
        base = reg.get("base_rate") or {}
        fitted = (reg.get("rows") or {}).get("fitted", 0)  # the rows in its likelihood, not every row of the file
        lines.append(f"Fitted with a hospital registry: {fitted} rows fitted; base rate of infiltration "
                     f"{W.percent(base['prior']['mean'])} before it, {W.percent(base['posterior']['mean'])} after it "
                     f"(means)." if base else f"Fitted with a hospital registry: {fitted} rows fitted.")
    if d["left_out_case"]:
        lo = d["left_out_case"]
        lines.append(f"This patient is library case {lo['case']}: answered with it left out "
                     f"(PSIS, Pareto k {lo['pareto_k']:.2f}{'' if lo['reliable'] else ', UNRELIABLE'}).")
    lines.append(f"Not modelled: {', '.join(m['not_modelled'])}. "
                 "This supports and does not replace clinical judgment.")
    return T.lines(lines) + "\n"


def _source(text: str) -> str:
    return text if text.startswith("--") else common.shown_path(text)


def decision_lines(dec: dict) -> list[str]:
    """The decision in plain lines: the work-up first, the thresholds, the action the mean implies, whether the
    patient sits on a threshold, what each test could change."""
    out = [f"Decision ({_source(dec['thresholds']['source'])}): {W.decision_sentence(dec)}"]
    edge = W.threshold_sentence(dec, lambda t: t)
    if edge:
        out.append(f"  {edge}")
    for t in dec["tests"]:
        out.append(f"  {t['test']:<12} {W.change_by_test(t, dec, digits=4)}")
    out.append("  " + W.negative_lps_sentence(dec, lambda m: m.replace("_", " ")))
    return out
