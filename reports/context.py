"""One context for the clinician report: every number and phrase, built once from an answer.

The HTML and the PDF are both rendered from the dict that :func:`build` returns, so they show the
same numbers in the same words. The context is plain data (str, int, float, bool, list, dict): the
figures (:mod:`reports.figures`) draw from it and never see the model.

Which summary is shown is always named: the headline probability is the **mean** over posterior
draws (DESIGN §1); factors on the odds and the waterfall use **medians** of the log odds.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import numpy as np

from model import answer as A
from model import findings as F
from model import structure as S
from model.evidence import Evidence
from reports import wording as W

TITLE = "Facial palsy in acute leukemia: leukemic infiltration or Bell's palsy?"
FAN_LINES = 200  # posterior draws drawn in the Fagan nomogram
FAN_SEED = 20240611

FINDING_NAMES: dict[str, str] = {
    "lineage": "Leukemia type",
    "remission": "Status when the palsy started",
    "laterality": "Side of the facial palsy",
    "other_cranial_nerves": "Other cranial nerves",
    "peripheral_nerves": "Peripheral nerves, plexus or roots",
    "csf": "Lumbar punctures (CSF)",
    "mri": "Contrast MRI",
}

VALUE_NAMES: dict[tuple[str, str], str] = {
    ("remission", "not_in_remission"): "not in remission (induction, refractory disease or known relapse)",
    ("remission", "remission_on_treatment"): "in complete remission, on treatment",
    ("remission", "remission_off_treatment"): "in complete remission, off treatment (including after HSCT)",
    ("remission", F.AT_DIAGNOSIS): "the palsy led to the leukemia diagnosis (outside the model's population)",
    ("laterality", "unilateral"): "one side",
    ("laterality", "bilateral"): "both sides",
    ("other_cranial_nerves", "none"): "no other cranial nerve deficit",
    ("other_cranial_nerves", "one_or_more"): "deficit of one or more other cranial nerves",
    ("peripheral_nerves", "none"): "no peripheral nerve involvement",
    ("peripheral_nerves", "one_or_more"): "one or more peripheral nerves, plexus or roots involved",
    ("mri", "normal"): "normal",
    ("mri", "facial_nerve_enhancement"): "enhancement of the facial nerve only",
    ("mri", "multiple_nerve_or_leptomeningeal"): "other cranial nerves or the leptomeninges thickened or enhancing",
    ("mri", "mass"): "soft-tissue mass along the nerve",
}

SHORT_NAMES: dict[tuple[str, str], str] = {
    ("remission", "not_in_remission"): "not in remission",
    ("remission", "remission_on_treatment"): "remission, on treatment",
    ("remission", "remission_off_treatment"): "remission, off treatment",
    ("laterality", "unilateral"): "unilateral palsy",
    ("laterality", "bilateral"): "bilateral palsy",
    ("other_cranial_nerves", "none"): "no other cranial nerve",
    ("other_cranial_nerves", "one_or_more"): "other cranial nerve(s)",
    ("peripheral_nerves", "none"): "no peripheral nerve",
    ("peripheral_nerves", "one_or_more"): "peripheral nerve(s)",
    ("mri", "normal"): "MRI normal",
    ("mri", "facial_nerve_enhancement"): "MRI facial nerve enhancement",
    ("mri", "multiple_nerve_or_leptomeningeal"): "MRI several nerves/meninges",
    ("mri", "mass"): "MRI mass along the nerve",
}

TEST_NAMES: dict[str, str] = {
    "lp_cytology": "lumbar puncture read by cytology",
    "lp_flow": "lumbar puncture read by flow cytometry",
    "mri": "contrast MRI",
}

OTHER_CAUSES = ("vincristine neuropathy", "VZV reactivation (Ramsay Hunt syndrome)", "Guillain-Barré syndrome",
                "graft-versus-host disease", "non-leukemic otomastoiditis")

DISCLAIMER = ("This report supports and does not replace clinical judgment. It answers one question, leukemic "
              "infiltration against idiopathic Bell's palsy, from published evidence of uneven quality; the "
              "treating team weighs it with everything the model does not see.")


def value_name(finding: str, value: str) -> str:
    """A finding's level in plain words (LPs as 'negative, cytology')."""
    if finding == "csf":
        result, method = value.split(":")
        return f"{result}, {'flow cytometry' if method == 'flow' else 'cytology'}"
    return VALUE_NAMES.get((finding, value), value.replace("_", " "))


def player_label(p: A.Player) -> str:
    """'LP 2: negative, cytology' or 'Side of the facial palsy: both sides'."""
    if p.finding == "csf":
        return f"LP {p.index}: {value_name('csf', p.value)}"
    return f"{FINDING_NAMES[p.finding]}: {value_name(p.finding, p.value)}"


def short_label(p: A.Player) -> str:
    """A short label for a figure axis: 'LP 1 negative (cytology)', 'MRI mass along the nerve'."""
    if p.finding == "csf":
        result, method = p.value.split(":")
        return f"LP {p.index} {result} ({method})"
    return SHORT_NAMES.get((p.finding, p.value), p.value)


def _prob(s: dict[str, float], ci: float) -> dict[str, Any]:
    """A probability summary with its phrases (mean as the point, with the interval)."""
    s = {**s, "ci": ci}
    return {"mean": s["mean"], "median": s.get("median"), "lower": s["lower"], "upper": s["upper"], "ci": ci,
            "percent": W.percent(s["mean"]), "interval": W.interval(s["lower"], s["upper"], ci),
            "text": W.probability_with_interval(s), "words": W.words(s["mean"])}


def _refs(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


class _Citations:
    """Numbers references in order of first citation."""

    def __init__(self, evidence: Evidence) -> None:
        self.ev = evidence
        self.order: list[str] = []

    def cite(self, keys: list[str]) -> list[int]:
        out = []
        for k in keys:
            if k not in self.ev.references:
                continue
            if k not in self.order:
                self.order.append(k)
            n = self.order.index(k) + 1
            if n not in out:
                out.append(n)
        return sorted(out)

    def references(self) -> list[dict[str, Any]]:
        out = []
        for n, key in enumerate(self.order, start=1):
            ref = self.ev.references[key]
            links = []
            if ref.get("doi"):
                url = "https://doi.org/" + quote(str(ref["doi"]), safe="/:;()._-<>")
                links.append({"label": f"doi:{ref['doi']}", "url": url})
            if ref.get("pmid"):
                links.append({"label": f"PMID {ref['pmid']}", "url": f"https://pubmed.ncbi.nlm.nih.gov/{quote(str(ref['pmid']))}/"})
            if not links and ref.get("url"):
                links.append({"label": "source page", "url": str(ref["url"])})
            out.append({"n": n, "key": key, "text": citation_text(ref), "links": links,
                        "short": short_citation(ref)})
        return out


def citation_text(ref: dict[str, Any]) -> str:
    """'Authors. Title. Journal Year;volume:pages.' (identifiers are given as links)."""
    parts = [str(ref.get("authors", "")).rstrip("."), str(ref.get("title", "")).rstrip(".")]
    journal = " ".join(str(x) for x in (ref.get("journal"), ref.get("year")) if x)
    if ref.get("volume"):
        journal += f";{ref['volume']}"
        if ref.get("pages"):
            journal += f":{ref['pages']}"
    if journal:
        parts.append(journal)
    return ". ".join(p for p in parts if p) + "."


def short_citation(ref: dict[str, Any], title_chars: int = 60) -> str:
    """'First author et al. Title. Journal Year. doi:... PMID ...' (title and journal shortened)."""
    authors = str(ref.get("authors", "")).strip()
    first = authors.split(",")[0].strip().rstrip(".") if authors and not authors.lower().startswith("not ") else ""
    if first and ("," in authors or "et al" in authors):
        first += " et al"
    title = str(ref.get("title", "")).rstrip(".")
    if len(title) > title_chars:
        title = title[: title_chars - 1].rstrip() + "…"
    journal = str(ref.get("journal") or "")
    if journal.lower().startswith("not ") or len(journal) > 45:
        journal = journal[:44].rstrip() + "…" if journal and not journal.lower().startswith("not ") else ""
    year = str(ref.get("year") or "")
    year = year if year[:4].isdigit() else ""
    ids = [f"doi:{ref['doi']}" if ref.get("doi") else "", f"PMID {ref['pmid']}" if ref.get("pmid") else ""]
    parts = [first, title, " ".join(x for x in (journal, year) if x), " ".join(x for x in ids if x)]
    return ". ".join(p for p in parts if p) + "."


def _case_informs(case: Any, finding: str) -> bool:
    """Whether a library case enters the likelihood of ``finding`` (DESIGN §3, §4)."""
    if finding in case.proven_by:
        return False
    if finding in ("lineage", "remission"):
        return case.in_population and case.values.get(finding) is not None
    if finding == "csf":
        return bool(case.csf)
    return case.values.get(finding) is not None


def _evidence_for(p: A.Player, ev: Evidence, cites: _Citations, lineage: str | None) -> list[dict[str, Any]]:
    """The evidence behind one finding: cohort entries of its item (L and B), pretest blocks, cases."""
    groups: list[dict[str, Any]] = []
    item = S.csf_item(p.value.split(":")[1]) if p.finding == "csf" else p.finding
    for hyp, name in (("L", "infiltration"), ("B", "Bell's palsy")):
        entries = [e for e in ev.entries if e.item == item and e.hypothesis == hyp]
        counts = [e for e in entries if e.kind != "expert_judgment"]
        judged = [e for e in entries if e.kind == "expert_judgment"]
        if counts:
            groups.append({"label": f"cohorts, {name} ({len(counts)})",
                           "refs": cites.cite([k for e in counts for k in e.refs])})
        if judged:
            groups.append({"label": f"expert judgment, {name} ({len(judged)})",
                           "refs": cites.cite([k for e in judged for k in e.refs])})
    pt = ev.pretest
    if p.finding == "lineage":
        keys = _refs(pt["lineage_share"].get("ref")) + _refs(pt["relapse_hazard"][p.value].get("ref"))
        groups.append({"label": "rate model (shares, relapse hazard)", "refs": cites.cite(keys)})
    elif p.finding == "remission":
        lins = [lineage] if lineage else list(S.LINEAGES)
        keys = [k for lin in lins for k in _refs(pt["remission_share"][lin].get("ref"))]
        value = p.value if p.value != F.AT_DIAGNOSIS else "not_in_remission"
        if value in pt["remission_multiplier"]:
            keys += _refs(pt["remission_multiplier"][value].get("ref"))
        groups.append({"label": "rate model (shares, relapse multiplier)", "refs": cites.cite(keys)})
    cases = [c for c in ev.cases if _case_informs(c, p.finding)]
    if cases:
        groups.append({"label": f"case reports of infiltration ({len(cases)}, weight {ev.w_case:g} each)",
                       "refs": cites.cite([c.ref for c in cases])})
    for g in groups:
        g["text"] = f"{g['label']}: " + (", ".join(f"[{n}]" for n in g["refs"]) if g["refs"] else "no citation (expert judgment)")
    return groups


def _fan(ans: A.Answer) -> dict[str, Any]:
    """A deterministic sample of (prior log odds, total log LR) draws for the Fagan nomogram."""
    rng = np.random.default_rng(FAN_SEED)
    n = len(ans.prior_log_odds)
    w = None if ans.weights is None else ans.weights / ans.weights.sum()
    idx = rng.choice(n, size=min(FAN_LINES, n), replace=w is not None, p=w)
    lr = ans.posterior_log_odds - ans.prior_log_odds
    pre_med = float(A.weighted_quantile(ans.prior_log_odds, [0.5], ans.weights)[0])
    lr_med = float(A.weighted_quantile(lr, [0.5], ans.weights)[0])
    return {"pre": [float(x) for x in ans.prior_log_odds[idx]], "log_lr": [float(x) for x in lr[idx]],
            "median_pre": pre_med, "median_log_lr": lr_med, "lines": int(len(idx)),
            "pretest_fixed": ans.pretest is not None}


def _waterfall(ans: A.Answer, labels: list[str], shorts: list[str]) -> dict[str, Any]:
    """Bars: the base rate, each finding (clinical order), the result; medians and intervals of the
    cumulative log odds after each step, and each finding's factor (median, interval)."""
    ci, w = ans.ci, ans.weights
    cum = ans.prior_log_odds[None, :] + np.concatenate([np.zeros((1, ans.prior_log_odds.size)),
                                                         np.cumsum(ans.sequential, axis=0)])
    steps = []
    q = [(1 - ci) / 2, 0.5, (1 + ci) / 2]
    for k in range(len(cum)):
        lo, med, hi = (float(x) for x in A.weighted_quantile(cum[k], q, w))
        step: dict[str, Any] = {"lower": lo, "median": med, "upper": hi,
                                "p_median": float(A.expit(np.array(med))), "p_lower": float(A.expit(np.array(lo))),
                                "p_upper": float(A.expit(np.array(hi)))}
        if k == 0:
            name = "Base rate" if ans.pretest is None else "Pretest (set by hand)"
            step.update(kind="base", label=name, short=name, start=None)
        else:
            s = A.summary(ans.sequential[k - 1], ci, w)
            step.update(kind="finding", label=labels[k - 1], short=shorts[k - 1], start=steps[-1]["median"],
                        factor=W.factor(s["median"]), factor_text=W.factor_with_interval(s, ci))
        steps.append(step)
    last = dict(steps[-1])
    last.update(kind="result", label="After all findings", short="After all findings", start=None)
    last.pop("factor", None)
    last.pop("factor_text", None)
    steps.append(last)
    for s in steps:
        s["p_text"] = f"{W.percent(s['p_median'])} ({W.interval(s['p_lower'], s['p_upper'], ci)})"
    return {"steps": steps, "bars": len(steps)}


def build(ans: A.Answer, evidence: Evidence) -> dict[str, Any]:
    """The report context of ``ans`` (with ``evidence`` for citations): every number and phrase.

    Parameters
    ----------
    ans : Answer
        The patient's answer (:func:`model.answer.answer`).
    evidence : Evidence
        The evidence the posterior was fitted to (for citations, population and w_case).

    Returns
    -------
    dict
        Plain data; see the keys below in the code. Rendering never computes a number.
    """
    pat = ans.patient
    ci = ans.ci
    cites = _Citations(evidence)
    ci_pct = round(100 * ci)

    findings = []
    for name in F.FINDINGS:
        if name == "csf":
            lps = [f"LP {i}: {value_name('csf', lp.code)}" for i, lp in enumerate(pat.csf, start=1)]
            findings.append({"name": FINDING_NAMES[name], "value": "; ".join(lps) if lps else "unknown (none entered)",
                             "known": bool(lps)})
        else:
            v = getattr(pat, name)
            findings.append({"name": FINDING_NAMES[name], "value": value_name(name, v) if v else "unknown",
                             "known": v is not None})
    unknown = [f["name"] for f in findings if not f["known"]]

    prob = _prob(ans.probability, ci)
    base = _prob(ans.prior_probability, ci)
    headline = W.sentence_start(prob["words"])
    n_filled = W.count_of_100(prob["mean"])

    pt = evidence.pretest
    base_keys = (_refs(pt["lineage_share"].get("ref"))
                 + [k for lin in S.LINEAGES for k in _refs(pt["relapse_hazard"][lin].get("ref"))]
                 + [k for r in S.MULTIPLIED_REMISSIONS for k in _refs(pt["remission_multiplier"][r].get("ref"))]
                 + _refs(pt["p_facial_given_relapse"].get("ref")) + _refs(pt["bell_incidence"].get("ref")))
    base_refs = cites.cite(base_keys) if ans.pretest is None else []

    plist = list(ans.players)
    labels = [player_label(p) for p in plist]
    rows = []
    for p, label, c, s in zip(plist, labels, ans.contributions, ans.shapley_values, strict=True):
        ev_groups = _evidence_for(p, evidence, cites, pat.lineage)
        rows.append({"label": label, "factor": W.factor(c["log_lr"]["median"]),
                     "factor_text": W.factor_with_interval(c["log_lr"], ci),
                     "interval": f"{W.factor(c['log_lr']['lower'])} to {W.factor(c['log_lr']['upper'])}",
                     "shapley": W.factor(s["log_lr"]["median"]), "log_lr": c["log_lr"],
                     "direction": "raises" if c["log_lr"]["median"] > 0 else "lowers",
                     "evidence": ev_groups, "same_as": None})
    for i, r in enumerate(rows):  # repeated LPs by one method share their evidence: say so once
        first = next(q for q in rows[:i + 1] if q["evidence"] == r["evidence"])
        if first is not r:
            r["same_as"] = first["label"].split(":")[0]

    tests = []
    done_lps = len(pat.csf)
    for t in ans.next_tests:
        name = TEST_NAMES.get(t["test"], t["test"].replace("_", " "))
        if t["test"].startswith("lp_"):
            name = ("another " if done_lps else "a ") + name
        else:
            name = "a " + name
        outs = []
        for o in t["outcomes"]:
            pr = _prob({**o["probability"], "median": None}, ci)
            after = _prob(o["probability_after"], ci)
            res = value_name("mri", o["result"]) if t["test"] == "mri" else o["result"]
            outs.append({"result": res, "probability": pr, "after": after,
                         "sentence": (f"If {res} (chance of this result {pr['text']}): "
                                      f"{after['words']}, {after['text']}.")})
        tests.append({"test": t["test"], "name": W.sentence_start(name), "outcomes": outs})

    variant = ans.model["variant"]
    if variant == "independent":
        assumption = ("Model variant 'independent': the findings, and repeated lumbar punctures, are taken as "
                      "conditionally independent given the class (infiltration or Bell's palsy). Findings that "
                      "go together within infiltration (two negative LPs by the same method, for instance) may "
                      "therefore move the odds more than they should.")
    else:
        assumption = (f"Model variant '{variant}': infiltration is a mixture of forms ({', '.join(evidence.forms)}); "
                      "findings are taken as independent given the form, so they are dependent given infiltration.")
    limits = [
        "Only two explanations are weighed: leukemic infiltration and idiopathic Bell's palsy. Other causes are "
        "not modelled: " + ", ".join(OTHER_CAUSES) + ". Each needs its own assessment; the probability here is "
        "relative to Bell's palsy only.",
        "Case reports are selected: publication favours striking cases. The case weight w_case "
        f"({evidence.w_case:g}) widens the uncertainty but does not remove that bias. Bilateral palsy, for "
        "instance, is common in published cases and rare in the one unselected series of facial palsy in leukemia.",
        assumption,
        "Not in the schema, so not used: time since remission, prior CNS disease, age, circulating blasts.",
        "The rates of other cranial nerve and peripheral nerve involvement under Bell's palsy are not stratified "
        "by treatment phase, although vincristine can cause both.",
    ]
    if ans.pretest is not None:
        limits.append(f"The base rate was replaced by hand (--pretest {ans.pretest:g}): the answer is a scenario, "
                      "not the model's estimate.")

    oop = None
    if pat.at_diagnosis:
        oop = ("Outside the model's population: this facial palsy led to the leukemia diagnosis. Such palsies are "
               "almost always leukemic; the model was built for a new palsy in a known leukemia and answers this "
               "one as 'not in remission', which is not a validated use.")
    left = None
    if ans.left_out:
        lo = ans.left_out
        left = (f"This patient is a published case of the evidence library ({lo['case']}); it was left out of "
                f"the evidence for this answer (Pareto-smoothed importance sampling, Pareto k "
                f"{lo['pareto_k']:.2f}{'' if lo['reliable'] else ': unreliable, treat the numbers with caution'}).")

    m = ans.model
    provenance = [
        ("Evidence hash", str(m["evidence_hash"])),
        ("Model variant", str(variant)),
        ("palsy version", str(m["version"])),
        ("Sampler seed", str(m.get("seed"))),
        ("Posterior draws", str(m["draws"])),
        ("MCMC diagnostics", "passed" if m.get("diagnostics_ok") else "NOT passed: read with caution"),
        ("Credible intervals", f"{ci_pct}% equal-tailed"),
        ("Base rate", "from the rate model of priors/pretest.yaml" if ans.pretest is None
         else f"set by hand to {W.percent(ans.pretest)}"),
    ]

    wf = _waterfall(ans, labels, [short_label(p) for p in plist])
    fan = _fan(ans)
    figures = {
        "icons": {"filled": n_filled, "total": 100,
                  "alt": (f"Icon array of 100 patients: {n_filled} filled icons for leukemic infiltration "
                          f"and {100 - n_filled} open icons for Bell's palsy.")},
        "waterfall": {**wf, "ci": ci,
                      "alt": ("Odds waterfall: " + "; ".join(
                          f"{s['label']}" + (f" {s['factor']}" if s["kind"] == "finding" else "")
                          + f", then {W.percent(s['p_median'])}" for s in wf["steps"]) + "."),
                      "caption": (f"How the odds move from the base rate through each finding in clinical order. "
                                  f"Each bar ends at the median probability after that finding; the whisker is its "
                                  f"{ci_pct}% credible interval. The axis is log odds, labelled in probabilities. "
                                  f"Numbers on the bars are the median factor on the odds.")},
        "fagan": {**fan,
                  "alt": (f"Fagan nomogram: {fan['lines']} lines, one per posterior draw, from the base rate on "
                          f"the left through the combined likelihood ratio of the findings (median "
                          f"{W.factor(fan['median_log_lr'])}) to the probability after the findings on the right."),
                  "caption": (f"Fagan nomogram: each thin line is one of {fan['lines']} posterior draws (base rate "
                              f"on the left, likelihood ratio of all findings together in the middle, probability "
                              f"after them on the right); their spread is the uncertainty. The bold line joins "
                              f"the median base rate and the median likelihood ratio.")},
    }

    return {
        "title": TITLE,
        "patient": {"id": pat.id, "description": pat.description, "findings": findings, "unknown": unknown},
        "out_of_population": oop,
        "left_out": left,
        "ci": ci, "ci_percent": ci_pct,
        "headline": {**prob, "heading": headline,
                     "sentence": (f"{headline}: {prob['text']}. This is the mean over the posterior draws; "
                                  f"the median is {W.percent(prob['median'])}."),
                     "natural": W.natural_frequency(prob), "filled": n_filled},
        "base_rate": {**base, "refs": base_refs, "pretest": ans.pretest,
                      "sentence": ((f"Before any finding, for a new facial palsy in a patient with acute leukemia, "
                                    f"weighing infiltration against Bell's palsy only, the base rate is "
                                    f"{base['text']} (mean).") if ans.pretest is None else
                                   f"The base rate was set by hand to {W.percent(ans.pretest)}.")},
        "findings_table": rows,
        "next_tests": tests,
        "population": " ".join(str(pt.get("population", "")).split()),
        "limits": limits,
        "provenance": [{"name": k, "value": v} for k, v in provenance],
        "disclaimer": DISCLAIMER,
        "figures": figures,
        "references": cites.references(),
        "json": {"probability": ans.probability, "prior_probability": ans.prior_probability},
    }
