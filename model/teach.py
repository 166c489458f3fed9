"""Teaching (docs/design.md §6, issue 24): every number of the lesson, the cases to solve and the
interactive page's tables, computed through :func:`palsy.model.answer.answer` and
:class:`palsy.model.game.Tables`. Nothing here restates the answer's formulas: the lesson's numbers are
the answers of patients (the lesson's one typical patient with 0, 1, 2, ... negative LPs; each finding
added to it; each published case, answered with itself left out as ``palsy posterior`` does), and the
page's tables are the answer's own per-draw tables, exported for a small generic kernel in the browser.

**One convention throughout.** A probability is the answer's: the mean over the posterior draws of
P(cause | findings), with its equal-tailed credible interval. A factor on the odds (a likelihood ratio)
is the ratio of the odds of those means after and before a finding, so that "odds after = odds before x
factor" holds for the printed numbers. The 1,000-patient tree takes its three numbers from answers: the
differential of the typical patient, the probability that the next LP is negative (the answer's "what
the next test could do"), and the differential after a negative LP; every count in it is arithmetic on
those (:func:`tree`), and the sensitivity and specificity of each LP method for the typical patient are
the ones those answers imply (:func:`lp_accuracy`).

**The page's kernel** (:func:`page_tables`; ``reports/static/teach.js``): per draw s, component k and
whether blasts circulate (b = absent, present; summed over exactly, as :class:`palsy.model.game.Game`),

    a[s, k]    = sum of log P(level | k) over the tree findings (``level_lp``, the answer's table)
               + the CSF profile's term given the first LP's class (``level_lp``)
    c[s, k, b] = log P(context known, b, k | cause of k)   (a sum over the strata of the context tables)
               + per LP, log sum over its result patterns of P(pattern | k, tap, b)   (``lp.patterns``)
    log p(x, k | cause) = a + log(exp c[.., absent] + exp c[.., present])

then log P(cause) + log-sum-exp over each cause's components, normalised over the causes weighed. The
LP tables are :meth:`palsy.model.game.Tables.lp_logp` of each single pattern, by tap status and blasts;
the context tables are the rate model's per-draw log parameters times 0/1 incidences derived by probing
:mod:`palsy.model.likelihood`'s own functions (:func:`context_tables`); :func:`page_tables` refuses to
export tables that do not rebuild the answer's. Summaries (means, quantiles) are the answer's
:mod:`palsy.model.summaries`.

Nothing here imports matplotlib, jinja2 or PyMC: figures and pages are :mod:`palsy.reports.teaching`.
"""

from __future__ import annotations

import base64
import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import answer as A
from palsy.model import decision as D
from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import safe_yaml
from palsy.model.draws import Draws
from palsy.model.schema import Schema
from palsy.model.summaries import TIE_MC_ERRORS, tied_with

INF = A.INFILTRATION
FILE = "teaching_cases.yaml"
#: Patients in the natural-frequency tree.
TREE_N = 1000


# --- the teaching data -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    """A case to solve: the patient (id = the library's, so a library case is left out of the fit), where
    its findings come from, what the source established and the reasoning to show."""

    id: str
    title: str
    patient: F.Patient
    source: str  # cases.yaml | validation.yaml | teaching
    ref: str | None
    refs: tuple[str, ...]
    cause: str
    established: str
    teaching: str
    constructed: str = ""
    notes: str = ""
    where: dict[str, str] = dataclasses.field(default_factory=dict)
    #: The LPs (numbered from 1) whose method the source did not state: read as ``model.yaml``'s
    #: ``unknown_csf_method`` (a teacher's review, s16: case 2 showed "cytology negative" for LPs whose method its
    #: source never gave)
    unstated_methods: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Teaching:
    """The lesson's typical patient, the negative LP it repeats, and the cases to solve."""

    typical: F.Patient
    based_on: str
    negative_lp: F.LP
    repeats: int
    cases: tuple[Case, ...]
    about_the_same: float = 0.1  # a step within 1 +- this factor on the odds is "about the same"
    session: Mapping[str, Any] | None = None  # the facilitator's session: audience, objectives, timed plan, beliefs
    directory: Path | None = None  # the evidence folder read (its decision.yaml: whether the variants' decisions differ)
    glossary: tuple[tuple[str, str, str], ...] = ()  # (term, pattern, plain meaning): the words learners meet


def _session(doc: Any) -> dict[str, Any] | None:
    """The ``session`` block with its texts on one line each (YAML folds them), or None without one."""
    if not isinstance(doc, dict):
        return None

    def one_line(x: Any) -> Any:
        if isinstance(x, str):
            return " ".join(x.split())
        if isinstance(x, list):
            return [one_line(v) for v in x]
        if isinstance(x, dict):
            return {k: one_line(v) for k, v in x.items()}
        return x

    return one_line(doc)


def _patient(findings: Mapping[str, Any], pid: str, description: str, schema: Schema, source: str) -> F.Patient:
    data = {"id": pid, "description": " ".join(description.split()), **dict(findings)}
    return F.parse_patient(data, source, schema=schema)


#: What a case's ``where`` says of an LP whose method its source did not state (coded by cases.yaml's rule, as
#: ``model.yaml``'s ``unknown_csf_method``).
UNSTATED = "method not stated"


def _unstated(raw_csf: Any) -> tuple[int, ...]:
    """The LPs (from 1) of a ``cases.yaml`` case's ``csf`` list whose ``method`` is not given or ``unknown``."""
    if not isinstance(raw_csf, list):
        return ()
    return tuple(j for j, lp in enumerate(raw_csf, start=1)
                 if isinstance(lp, dict) and str(lp.get("method", "unknown")).strip().lower() == "unknown")


def _read_as(patient: F.Patient, lps: Sequence[int], method: str, where: str) -> F.Patient:
    """``patient`` with each LP of ``lps`` (from 1), coded with one method, read by ``method`` (``unknown_csf_method``):
    a case coded here or in validation.yaml writes an LP of unstated method by cases.yaml's rule, and its ``where``
    says so; reading it from ``model.yaml`` keeps the two in step."""
    csf = list(patient.csf)
    for j in lps:
        lp = csf[j - 1]
        if len(lp.results) != 1:
            raise F.InputError([f"LP {j}: its method is not stated, so give one result"], where)
        csf[j - 1] = F.LP(((method, lp.results[0][1]),), lp.traumatic)
    return patient.replace(csf=tuple(csf))


def library_patient(case: Any, schema: Schema) -> F.Patient:
    """A case of the library (:class:`palsy.model.evidence.Case`) as a patient: a partly known level
    (``ALL``, ``in_remission``) is unknown for a patient, an LP keeps its result by its (resolved) method."""
    values = {name: (v if v in schema.allowed(name) else None) for name, v in case.values.items()
              if name in schema.categorical}
    csf = tuple(F.LP(((method, result),)) for result, method in (case.csf or ()))
    return F.Patient(id=case.id, description="", values={n: values.get(n) for n in schema.categorical}, csf=csf,
                     schema=schema)


def load(directory: str | Path, schema: Schema, library: Sequence[Any] = ()) -> Teaching:
    """Read ``teaching_cases.yaml`` in ``directory``.

    Parameters
    ----------
    directory : path
        The evidence folder (``priors/``): also holds ``validation.yaml``.
    schema : Schema
        The posterior's schema (patients are parsed with it).
    library : sequence of evidence.Case
        The case library (``Evidence.cases``), for cases whose ``source`` is ``cases.yaml``.

    Raises
    ------
    findings.InputError
        Naming the file and the case for a case that is not found or whose findings do not parse.
    """
    folder = Path(directory)
    path = folder / FILE
    doc = safe_yaml.load(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("typical"), dict) or not isinstance(doc.get("cases"), list):
        raise F.InputError(["give `typical:` (a mapping) and `cases:` (a list)"], str(path))
    typ = doc["typical"]
    typical = _patient(typ["findings"], str(typ.get("id", "typical")), str(typ.get("description", "")), schema, str(path))
    neg, problems = F.parse_lp(typ["negative_lp"], "typical.negative_lp", schema)
    if neg is None:
        raise F.InputError(problems, str(path))
    by_id = {c.id: c for c in library}
    validation = {}
    if any(isinstance(c, dict) and c.get("source") == "validation.yaml" for c in doc["cases"]):
        vdoc = safe_yaml.load(folder / "validation.yaml")
        validation = {c["id"]: c for c in (vdoc.get("cases") or []) if isinstance(c, dict)}
    library_csf: dict[str, Any] = {}
    if any(isinstance(c, dict) and c.get("source") == "cases.yaml" for c in doc["cases"]):
        # the library's own coding of each LP (evidence.Case holds the method resolved, not whether it was stated)
        cdoc = safe_yaml.load(folder / "cases.yaml")
        library_csf = {str(c["id"]): (c.get("findings") or {}).get(schema.lp.name) for c in (cdoc.get("cases") or [])
                       if isinstance(c, dict) and "id" in c}
    unknown_method = _unknown_csf_method(folder, schema)
    cases = []
    for raw in doc["cases"]:
        cid, source = str(raw["id"]), str(raw["source"])
        ref = raw.get("ref")
        where = raw.get("where") or {}
        if source == "cases.yaml":
            if cid not in by_id:
                raise F.InputError([f"case {cid}: not in cases.yaml"], str(path))
            patient = dataclasses.replace(library_patient(by_id[cid], schema), description=str(raw["title"]))
            ref = by_id[cid].ref
            unstated = _unstated(library_csf.get(cid))
        elif source == "validation.yaml":
            if cid not in validation:
                raise F.InputError([f"case {cid}: not in validation.yaml's cases"], str(path))
            patient = _patient(validation[cid].get("findings") or {}, cid, str(raw["title"]), schema, f"{path}: {cid}")
            ref = validation[cid].get("ref")
            where = validation[cid].get("where") or {}
            unstated = ()
        else:
            patient = _patient(raw.get("findings") or {}, cid, str(raw["title"]), schema, f"{path}: {cid}")
            unstated = ()
        if source != "cases.yaml" and UNSTATED in str(where.get(schema.lp.name, "")).lower():
            unstated = tuple(range(1, len(patient.csf) + 1))
            patient = _read_as(patient, unstated, unknown_method, f"{path}: {cid}")
        cases.append(Case(cid, str(raw["title"]), patient, source, ref, tuple(raw.get("refs") or ()),
                          str(raw.get("cause", "unknown")), " ".join(str(raw.get("established", "")).split()),
                          " ".join(str(raw.get("teaching", "")).split()),
                          " ".join(str(raw.get("constructed", "")).split()), " ".join(str(raw.get("notes", "")).split()),
                          {str(k): str(v) for k, v in (raw.get("where") or {}).items()}, unstated))
    same = float((doc.get("prediction") or {}).get("about_the_same", 0.1))
    return Teaching(typical, str(typ.get("based_on", "")), neg, int(typ.get("repeats", 3)), tuple(cases), same,
                    _session(doc.get("session")), folder,
                    tuple((str(g["term"]), str(g["pattern"]), " ".join(str(g["meaning"]).split()))
                          for g in doc.get("glossary") or ()))


def _unknown_csf_method(folder: Path, schema: Schema) -> str:
    """``model.yaml``'s ``unknown_csf_method`` in ``folder`` (the schema's first method without it, as
    :mod:`palsy.model.evidence` reads it)."""
    doc = safe_yaml.load(folder / "model.yaml") if (folder / "model.yaml").is_file() else {}
    method = (doc or {}).get("unknown_csf_method", schema.lp.methods[0]) if isinstance(doc, dict) else schema.lp.methods[0]
    return str(method)


# --- small helpers on answers ---------------------------------------------------------------------

def odds(p: float) -> float:
    """The odds of probability ``p``."""
    return p / (1.0 - p)


def with_lps(patient: F.Patient, lp: F.LP, k: int) -> F.Patient:
    """``patient`` with ``k`` more copies of ``lp`` after its own LPs."""
    return patient.replace(csf=tuple(patient.csf) + (lp,) * k)


def means(ans: A.Answer) -> dict[str, float]:
    """The mean probability of every cause weighed."""
    return {c["cause"]: c["probability"]["mean"] for c in ans.cause_summaries()}


def ties(ans: A.Answer, ess: float) -> list[str]:
    """The causes tied with the leading cause (:func:`palsy.model.summaries.tied_with`): their order is noise of
    the computation, not a finding."""
    lead = ans.causes.index(ans.leading_cause)
    return [ans.causes[j] for j in tied_with(ans.posterior_cause, lead, ans.active, ans.weights, ess)]


ess_of = A.ess_of


def differential(ans: A.Answer, ess: float) -> dict[str, Any]:
    """An answer's differential: P(infiltration), every cause (mean, interval), the leading cause and the
    causes tied with it."""
    return {"probability": ans.probability, "causes": ans.cause_summaries(), "means": means(ans),
            "leading": ans.leading_cause, "tied": ties(ans, ess)}


def _lp_outcome_probability(ans: A.Answer, want: Mapping[str, str]) -> float:
    """P(the next LP reads ``want``) (a result per method; the other method and the CSF profile it
    reveals summed over), from the answer's "what the next test could do"."""
    total = 0.0
    for test in ans.next_tests:
        for o in test["outcomes"]:
            code = o["result"].split(";")[0].strip()
            if "=" not in code:
                continue
            got = dict(part.split("=", 1) for part in code.split(","))
            if all(got.get(m) == r for m, r in want.items()):
                total += o["probability"]["mean"]
    return total


# --- the core lesson -------------------------------------------------------------------------------

def tree(before: Mapping[str, float], p_negative: float, after: Mapping[str, float], n: float) -> dict[str, Any]:
    """A natural-frequency split of ``n`` patients by one LP: ``before`` and ``after`` (a negative LP) are
    the answers' mean probabilities of each cause, ``p_negative`` the answer's P(the LP is negative).

    Every count is arithmetic on those three: of ``n``, ``n P(c)`` have cause c; ``n P(negative)`` have a
    negative LP, of whom ``n P(negative) P(c | negative)`` have c; the rest of each cause has an LP that
    reads malignant cells. The probabilities after are therefore exactly the answers'.
    """
    all_c = {c: n * p for c, p in before.items()}
    neg_total = n * p_negative
    neg = {c: neg_total * after[c] for c in before}
    pos = {c: all_c[c] - neg[c] for c in before}
    return {"n": n, "all": all_c, "negative": neg, "positive": pos, "negative_total": neg_total,
            "positive_total": n - neg_total}


def lp_accuracy(p_before: float, p_negative: float, p_after: float) -> dict[str, float]:
    """Sensitivity, specificity and the likelihood ratios of an LP for infiltration, as the answers before
    and after a negative LP and P(negative) imply them: sensitivity = 1 - P(neg) P(inf | neg) / P(inf),
    specificity = P(neg) (1 - P(inf | neg)) / (1 - P(inf)); LR- = (1 - Se) / Sp = odds after / odds before."""
    se = 1.0 - p_negative * p_after / p_before
    sp = p_negative * (1.0 - p_after) / (1.0 - p_before)
    return {"sensitivity": se, "specificity": sp, "lr_negative": (1.0 - se) / sp,
            "lr_positive": se / (1.0 - sp) if sp < 1 else math.inf}


def core(draws: Draws, teaching: Teaching, *, ci: float = 0.9, tables: A.Tables | None = None,
         other: Draws | None = None) -> dict[str, Any]:
    """Every number of the core, from answers for the one typical patient.

    Returns
    -------
    dict
        ``steps[k]``: the differential after k negative LPs (k = 0 is the typical patient); ``lr[k]``: the
        factor on the odds of the k-th negative LP (odds after / odds before, of the means);
        ``p_negative[k]``: P(the (k+1)-th LP is negative) from the k-th answer; ``trees``: the first and
        second LP as natural frequencies; ``gain[k]``: the share of what infiltration lost by step k+1
        that each other cause took; ``accuracy``: per LP method, sensitivity, specificity and likelihood
        ratios; ``mri``: each MRI pattern's factor on the odds and the differential after it;
        ``prior``: the differential before any finding (who the patient is unknown); ``variants[k]``: the
        answer's comparison with the ``other`` variant's draws after k negative LPs (None without them), as
        ``palsy posterior`` prints it.
    """
    t = tables or A.Tables(draws)
    ess = ess_of(draws)
    typ, lp = teaching.typical, teaching.negative_lp
    # with the other variant and the evidence folder's decision.yaml, each answer carries the decision, so that the
    # lesson can say whether the other variant's mean falls in another zone of it (as palsy posterior says)
    settings = D.load(teaching.directory, draws.causes) if other is not None and teaching.directory is not None else None
    answers = [A.answer(with_lps(typ, lp, k), draws, ci=ci, tables=t, shapley=False, rests_on=False, other=other,
                        decision_settings=settings, negative_lps=False)
               for k in range(teaching.repeats + 1)]
    steps = [differential(a, ess) for a in answers]
    p_inf = [s["probability"]["mean"] for s in steps]
    want = dict(lp.results)
    p_neg = [_lp_outcome_probability(a, want) for a in answers[:-1]]
    lr = [odds(p_inf[k]) / odds(p_inf[k - 1]) for k in range(1, len(p_inf))]
    gain = []
    for k in range(1, len(steps)):
        lost = p_inf[0] - p_inf[k]
        gain.append({c: (steps[k]["means"][c] - steps[0]["means"][c]) / lost for c in steps[0]["means"] if c != INF})
    first = tree(steps[0]["means"], p_neg[0], steps[1]["means"], TREE_N)
    second = tree(steps[1]["means"], p_neg[1], steps[2]["means"], first["negative_total"])
    accuracy = {}
    for key, methods in _method_sets(lp).items():
        one = F.LP(tuple((m, r) for m, r in lp.results if m in methods), lp.traumatic)
        a1 = A.answer(with_lps(typ, one, 1), draws, ci=ci, tables=t, shapley=False, rests_on=False)
        pn = _lp_outcome_probability(answers[0], dict(one.results))
        accuracy[key] = {"methods": list(methods), "p_negative": pn, "after": a1.probability,
                         **lp_accuracy(p_inf[0], pn, a1.probability["mean"])}
    mri = []
    sc = draws.schema
    reads = {test.reads for test in sc.next_tests.values() if test.reads != sc.lp.name}
    for finding in [f for f in sc.tree_findings if f in reads and typ.level(f) is None]:
        for level in sc.levels[finding]:
            a = A.answer(typ.replace(**{finding: level}), draws, ci=ci, tables=t, shapley=False, rests_on=False)
            mri.append({"finding": finding, "value": level, "after": differential(a, ess),
                        "lr": odds(a.probability["mean"]) / odds(p_inf[0])})
    blank = A.answer(F.Patient(id="no findings", values={n: None for n in sc.categorical}, schema=sc), draws, ci=ci,
                     tables=t, shapley=False, rests_on=False)
    return {"variant": draws.variant, "draws": draws.n, "ci": ci, "causes": list(draws.causes), "ess": ess,
            "patient": typ.to_dict(), "description": typ.description, "based_on": teaching.based_on,
            "negative_lp": lp.to_dict(), "steps": steps, "lr": lr, "p_negative": p_neg, "gain": gain,
            "trees": [first, second], "accuracy": accuracy, "mri": mri, "prior": differential(blank, ess),
            "model": answers[0].model, "variants": [_variant_step(a, settings) for a in answers],
            "false_positive": false_positives(draws, teaching, first, ci=ci, tables=t)}


def _variant_step(a: A.Answer, settings: D.Settings | None) -> dict[str, Any] | None:
    """The answer's comparison with the other variant (``Answer.variants``), with ``decision_differs``: whether
    the other variant's mean falls in another zone of this answer's decision (None without a decision), the
    decision's ``thresholds``, and each zone in decision.yaml's words (a teacher's review: the guide did not say the
    variant would change the decision)."""
    if a.variants is None:
        return None
    out = dict(a.variants)
    if a.decision is not None and settings is not None and out.get("probability"):
        out["decision_differs"] = out.get("action") not in (None, a.decision["action"])
        out["thresholds"] = dict(a.decision["thresholds"])
        out["our_action"] = a.decision["action"]
        out["zone_words"] = {"ours": settings.action_text[a.decision["action"]],
                             "other": settings.action_text.get(out.get("action") or "", "")}
    return out


def false_positives(draws: Draws, teaching: Teaching, first: Mapping[str, Any], *, ci: float = 0.9,
                    tables: A.Tables | None = None) -> dict[str, Any]:
    """Where the tree's positive LPs without infiltration come from, for the typical patient.

    The CSF model (:mod:`palsy.model.lp`) has two ways for an LP to read malignant cells without infiltration:
    an artefact of a method (reactive cells misread by cytology, an artefact of flow cytometry), always
    possible, and blasts from the blood carried in by a traumatic tap, possible only while blasts circulate
    (the schema's ``contamination`` finding and level). Returns the tree's count of those positives
    (``all``, of :data:`TREE_N`), the same count for the patient with the blood known to hold no blasts
    (``no_blasts``: the artefacts alone, from the answers of that patient), the patient's own level of the
    blasts' finding (``level``, None if unknown) and whether the patient can have blasts at all
    (``blasts_possible``: not known to be absent).
    """
    t = tables or A.Tables(draws)
    sc = draws.schema
    finding, present = sc.lp.contamination
    typ, lp = teaching.typical, teaching.negative_lp
    others = [c for c in first["all"] if c != INF]
    total = sum(first["positive"][c] for c in others)
    level = typ.level(finding)
    absent = [lv for lv in sc.levels[finding] if lv != present]
    no_blasts = total
    if level is None and absent:
        clean = typ.replace(**{finding: absent[0]})
        a0 = A.answer(clean, draws, ci=ci, tables=t, shapley=False, rests_on=False)
        a1 = A.answer(with_lps(clean, lp, 1), draws, ci=ci, tables=t, shapley=False, rests_on=False)
        tr = tree(means(a0), _lp_outcome_probability(a0, dict(lp.results)), means(a1), TREE_N)
        no_blasts = sum(tr["positive"][c] for c in others)
    elif level == present:
        no_blasts = math.nan  # blasts known to circulate: the tap's share is not separated here
    return {"n": TREE_N, "all": total, "no_blasts": no_blasts, "finding": finding, "present": present,
            "level": level, "blasts_possible": level != (absent[0] if absent else None)}


def _method_sets(lp: F.LP) -> dict[str, tuple[str, ...]]:
    """The LP read by each method alone and by all of them together (keys as the decision's curves)."""
    methods = lp.methods
    return {**{m: (m,) for m in methods}, "_and_".join(methods): tuple(methods)}


# --- the appendix --------------------------------------------------------------------------------

def single_findings(draws: Draws, teaching: Teaching, *, ci: float = 0.9,
                    tables: A.Tables | None = None) -> list[dict[str, Any]]:
    """Each level of each finding the typical patient does not have, added to it alone: its factor on
    the odds of infiltration (odds after / odds before, of the means) and the differential after it."""
    t = tables or A.Tables(draws)
    ess = ess_of(draws)
    typ, sc = teaching.typical, draws.schema
    p0 = A.answer(typ, draws, ci=ci, tables=t, shapley=False, rests_on=False).probability["mean"]
    rows = []
    for name in sc.categorical:
        if name in sc.scope or typ.level(name) is not None:
            continue
        for level in sc.levels[name]:
            a = A.answer(typ.replace(**{name: level}), draws, ci=ci, tables=t, shapley=False, rests_on=False)
            rows.append({"finding": name, "value": level, "after": differential(a, ess),
                         "lr": odds(a.probability["mean"]) / odds(p0)})
    return rows


def walkthrough(patient: F.Patient, draws: Draws, *, ci: float = 0.9, tables: A.Tables | None = None,
                ess: float | None = None) -> dict[str, Any]:
    """A patient step by step in clinical order (the answer's steps; a library case left out): after each
    finding, every cause's mean, P(infiltration), the factor on the odds of that step (of the means)
    and the leading cause with the causes tied with it."""
    t = tables or A.Tables(draws)
    ess = ess_of(draws) if ess is None else ess
    ans = A.answer(patient, draws, ci=ci, tables=t, shapley=False, rests_on=False)
    w = ans.weights
    running = ans.prior_log_odds[None, :] + np.cumsum(ans.sequential, axis=0) if len(ans.players) else np.zeros((0, t.n))
    steps_ = ans.steps()
    out = []
    prev = steps_[0]["causes"][INF]
    for p, s, lo, k in zip(ans.players, steps_[1:], running, range(1, len(steps_)), strict=True):
        pc = ans.step_cause[k]
        m = s["causes"]
        lead = max(m, key=m.get)
        tied = _tied_from(pc, ans.causes, ans.active, lead, w, ess)
        out.append({"finding": p.finding, "index": p.index, "value": p.value, "lp": p.lp.to_dict() if p.lp else None,
                    "causes": m, "probability": A.probability_summary(lo, ci, w), "leading": lead, "tied": tied,
                    "lr": odds(m[INF]) / odds(prev),
                    # the factor palsy posterior and the clinician report print for this step: the geometric mean
                    # over the draws, exp(mean log LR) (a teacher's review: the pages named the other as theirs)
                    "lr_geometric": ans.contributions[k - 1]["factor_geometric_mean"]})
        prev = m[INF]
    m0 = steps_[0]["causes"]
    lead0 = max(m0, key=m0.get)
    # where the patient starts: P(infiltration) with its interval, the leading cause and those tied with it (a teacher's
    # review, s16: the cases never showed it, and the lesson's "before any finding" row had no interval)
    return {"id": patient.id, "description": patient.description, "patient": patient.to_dict(),
            "prior": {"causes": m0, "probability": ans.prior_probability, "leading": lead0,
                      "tied": _tied_from(ans.step_cause[0], ans.causes, ans.active, lead0, w, ess)},
            "steps": out, "final": differential(ans, ess), "left_out": ans.left_out,
            "in_scope": ans.in_scope, "scope_notes": list(ans.scope_notes), "weights": ans.weights}


def _tied_from(pc: np.ndarray, causes: tuple[str, ...], active: np.ndarray, lead: str, w: np.ndarray | None,
               ess: float) -> list[str]:
    return [causes[j] for j in tied_with(pc, causes.index(lead), active, w, ess)]


def solve(case: Case, draws: Draws, *, ci: float = 0.9, tables: A.Tables | None = None) -> dict[str, Any]:
    """A case to solve: its walkthrough and, for a case with LPs, the answer without them (what a
    negative LP taken after a steroid can honestly claim at most)."""
    t = tables or A.Tables(draws)
    w = walkthrough(case.patient, draws, ci=ci, tables=t)
    fields = {f.name: getattr(case, f.name) for f in dataclasses.fields(case) if f.name != "patient"}
    out = {**{k: v for k, v in w.items() if k != "weights"}, "case": fields}
    if case.unstated_methods:
        # the LPs whose method the source did not state, and the method the model reads them by (model.yaml's
        # unknown_csf_method, as the fit read it)
        out["unstated"] = {"lps": list(case.unstated_methods), "read_as": str(t.settings["unknown_csf_method"])}
    if case.patient.csf:
        bare = case.patient.replace(csf=(), **{draws.schema.profile: None})
        a = A.answer(bare, draws, ci=ci, tables=t, shapley=False, rests_on=False)
        out["without_lps"] = differential(a, ess_of(draws))
    return out


def lesson(draws: Draws, teaching: Teaching, *, patients: Sequence[F.Patient] = (), ci: float = 0.9,
           other: Draws | None = None) -> dict[str, Any]:
    """Every number of the lesson (core, appendix and cases) from one variant's draws (the core compared with
    the ``other`` variant's, as ``palsy posterior`` compares them)."""
    t = A.Tables(draws)
    out = {"core": core(draws, teaching, ci=ci, tables=t, other=other),
            "findings": single_findings(draws, teaching, ci=ci, tables=t),
            "walkthroughs": [{k: v for k, v in walkthrough(p, draws, ci=ci, tables=t).items() if k != "weights"}
                             for p in patients],
            "cases": [solve(c, draws, ci=ci, tables=t) for c in teaching.cases],
            "not_modelled": list(t.settings["not_modelled"]), "variant": draws.variant, "draws": draws.n, "ci": ci,
            "evidence_hash": draws.meta.get("evidence_hash"), "version": draws.meta.get("version")}
    return out


def typical_with_lps(teaching: Teaching) -> F.Patient:
    """The lesson's typical patient with its negative LPs, without an id (as the interactive page's address
    carries it: the classroom's preset and the guide's link)."""
    return with_lps(teaching.typical, teaching.negative_lp, teaching.repeats).replace(id="")


# --- the interactive page's tables -----------------------------------------------------------------

def b64(x: np.ndarray) -> str:
    """Little-endian float32 bytes, base64 (infinities kept as -+1e30, which float32 holds)."""
    x = np.clip(np.nan_to_num(np.asarray(x, float), nan=0.0, posinf=1e30, neginf=-1e30), -1e30, 1e30).astype("<f4")
    return base64.b64encode(np.ascontiguousarray(x).tobytes()).decode("ascii")


def unb64(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`b64` back as a float64 array of ``shape``."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(float).reshape(shape)


def _probe(fn, base: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    """The 0/1 incidence of each cell of parameter ``name`` in ``fn`` (a function of the logs of its
    parameters, linear in them), found by probing ``fn`` with one cell's log at 1 and every other log at
    0: rows (cell, output); and ``fn`` with every log at 0 (its constant part)."""
    shape = base[name].shape
    cells = int(np.prod(shape))
    ones = {k: np.ones((1, *v.shape)) for k, v in base.items()}
    at0 = fn(ones)[0]
    probe = {k: np.broadcast_to(v, (cells, *v.shape[1:])) for k, v in ones.items()}
    probe[name] = np.where(np.eye(cells).reshape(cells, *shape) > 0, math.e, 1.0)
    rows = fn(probe) - at0[None]
    if not np.all(np.isclose(rows, 0.0, atol=1e-9) | np.isclose(rows, 1.0, atol=1e-9)):
        raise ValueError(f"page tables: {name} does not enter as a sum of log parameters")
    return np.round(rows).reshape(cells, -1), at0


def context_tables(draws: Draws) -> dict[str, Any]:
    """The rate model as per-draw log parameters times 0/1 incidences, each incidence found by probing
    :func:`palsy.model.likelihood.log_shares`, :func:`~palsy.model.likelihood.log_rates` and
    :func:`~palsy.model.likelihood.component_strata` (which are linear in the logs of their parameters):

        log share[n]      = sum_j share_features[j] [n in share_incidence[j]]
        log rate[c, n]    = rate_fixed[c N + n] + sum_j rate_features[j] [c N + n in rate_incidence[j]]
        log P(n, k | c(k)) = joint[c(k), n] - logsumexp_n joint[c(k), :] + sum_j form_features[j] [k N + n in ...]

    with joint = log share + log rate, and log P(c) the normalised log-sum-exp of joint over n."""
    p, r = draws.params, draws.rate_arrays
    share_names = [f"share_{f}" for f in r.context]
    one = {k: p[k][0] for k in share_names}
    s_feats, s_inc = [], []
    for name in share_names:
        rows, _ = _probe(lambda q: LK.log_shares(LK.NUMPY, q, r), one, name)
        s_inc += [np.flatnonzero(row).tolist() for row in rows]
        s_feats.append(np.log(p[name]).reshape(draws.n, -1))
    rate_names = [k for k in ("rate_lognormal", "rate_beta") if k in p and p[k].shape[-1]]
    one_r = {k: p[k][0] for k in rate_names}
    r_feats, r_inc, fixed = [], [], None

    def rates(q: dict[str, np.ndarray]) -> np.ndarray:
        return LK.log_rates(LK.NUMPY, q, r).reshape(len(next(iter(q.values()))), -1)

    for name in rate_names:
        rows, fixed = _probe(rates, one_r, name)
        r_inc += [np.flatnonzero(row).tolist() for row in rows]
        r_feats.append(np.log(p[name]))
    if fixed is None:
        fixed = np.asarray(r.fixed_log, float)
    f_feats, f_inc = [], []
    if "omega" in p:
        base = {**{k: p[k][:1] for k in share_names + rate_names}}

        def forms(q: dict[str, np.ndarray]) -> np.ndarray:
            m = len(q["omega"])
            full = {k: np.broadcast_to(v, (m, *v.shape[1:])) for k, v in base.items()}
            return LK.component_strata(LK.NUMPY, {**full, "omega": q["omega"]}, r)[1].reshape(m, -1)

        rows, _ = _probe(forms, {"omega": p["omega"][0]}, "omega")
        f_inc = [np.flatnonzero(row).tolist() for row in rows]
        f_feats.append(np.log(p["omega"]).reshape(draws.n, -1))
    cat = (lambda xs: np.concatenate(xs, axis=1) if xs else np.zeros((draws.n, 0)))  # noqa: E731
    return {"share_features": cat(s_feats), "share_incidence": s_inc, "rate_features": cat(r_feats),
            "rate_incidence": r_inc, "rate_fixed": np.asarray(fixed, float), "form_features": cat(f_feats),
            "form_incidence": f_inc}


def _dense(incidence: list[list[int]], size: int) -> np.ndarray:
    m = np.zeros((len(incidence), size))
    for j, idx in enumerate(incidence):
        m[j, idx] = 1.0
    return m


def rebuild_context(ctx: dict[str, Any], component_cause: Sequence[int], n_strata: int) -> dict[str, np.ndarray]:
    """What the page builds from the context tables (the numpy twin of ``teach.js``'s ``prepare``):
    ``log_prior`` (draw, cause), ``log_sk`` (draw, component, stratum) and ``log_share`` (draw, stratum),
    as :class:`palsy.model.game.Tables` has them."""
    kc = np.asarray(component_cause)
    size = len(ctx["rate_fixed"])
    n_c = size // n_strata
    log_share = ctx["share_features"] @ _dense(ctx["share_incidence"], n_strata)
    joint = (ctx["rate_fixed"] + ctx["rate_features"] @ _dense(ctx["rate_incidence"], size)).reshape(-1, n_c, n_strata)
    joint = joint + log_share[:, None, :]
    total = LK.NUMPY.logsumexp(joint, axis=-1)
    log_prior = total - LK.NUMPY.logsumexp(total, axis=-1)[:, None]
    log_sk = (joint - total[..., None])[:, kc]
    if ctx["form_incidence"]:
        log_sk = log_sk + (ctx["form_features"] @ _dense(ctx["form_incidence"], len(kc) * n_strata)).reshape(
            -1, len(kc), n_strata)
    return {"log_prior": log_prior, "log_sk": log_sk, "log_share": log_share}


def lp_tables(t: A.Tables) -> dict[str, Any]:
    """P(result pattern | component, blasts) of one LP for each tap status (``no``, ``yes``, unknown), blasts
    absent (0) and present (1): :meth:`palsy.model.game.Tables.lp_logp` of each single pattern. Components
    whose columns are equal in every draw share one (``unique``, ``component_unique``)."""
    sc = t.schema
    eye = np.eye(LP.N_PATTERNS)
    statuses = [*sc.lp.traumatic, None]
    tables = np.stack([np.exp(t.lp_logp(eye, status)) for status in statuses])  # (status, pattern, S, K, blasts)
    tables = np.transpose(tables, (0, 4, 2, 3, 1))  # (status, blasts, S, K, pattern)
    unique: list[int] = []
    comp_unique = []
    for k in range(tables.shape[3]):
        same = next((u for u, k0 in enumerate(unique) if np.array_equal(tables[:, :, :, k0], tables[:, :, :, k])), None)
        if same is None:
            unique.append(k)
            same = len(unique) - 1
        comp_unique.append(same)
    return {"statuses": [s if s is not None else "unknown" for s in statuses], "patterns": tables[:, :, :, unique],
            "component_unique": comp_unique, "methods": list(t.ix.methods),
            "pattern_results": [[("negative", "positive")[p >> 1], ("negative", "positive")[p & 1]]
                                for p in range(LP.N_PATTERNS)]}


def _aliases(draws: Draws, pid: str) -> list[str]:
    """Every id of the library case ``pid`` is (its id and its aliases), as ``Draws.case_index`` reads them."""
    i = draws.case_index(pid)
    return [] if i is None else [draws.meta["case_ids"][i], *draws.meta["case_aliases"][i]]


def page_tables(draws: Draws, t: A.Tables | None = None, *, weights: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Per-draw tables for the browser's kernel (every draw, float32, base64), enough to give the answer's
    P(infiltration), differential, steps and next tests for any findings of the schema.

    ``weights`` are PSIS weights by patient id (library cases the page offers: the answer's own
    ``weights``), so that a library case is answered with itself left out, as ``palsy posterior`` does;
    ``aliases`` names each of those cases' other ids (``patients/source-001.yaml`` is a case of the library
    under another id: the page had answered it with the case counted, a teacher's review found).

    Raises
    ------
    ValueError
        If the exported context tables do not rebuild the answer's (the rate model changed shape).
    """
    t = t or A.Tables(draws)
    sc, st = t.schema, t.st
    ctx = context_tables(draws)
    kc = [int(c) for c in t.component_cause]
    got = rebuild_context({k: (unb64(b64(v), v.shape) if isinstance(v, np.ndarray) and v.ndim == 2 else v)
                           for k, v in ctx.items()}, kc, st.n_strata)
    want = {"log_prior": t.log_prior, "log_sk": t.log_sk, "log_share": np.log(t.share)}
    for name, x in want.items():
        if not np.allclose(got[name], x, rtol=0, atol=2e-4):
            raise ValueError(f"page tables: {name} does not rebuild the answer's; update model/teach.py")
    lpt = lp_tables(t)
    n, k_n = t.n, len(kc)
    return {
        "variant": draws.variant, "n": n, "causes": list(t.causes), "components": list(draws.components),
        "component_cause": kc, "ess": ess_of(draws), "tie_mc_errors": TIE_MC_ERRORS,
        "levels": [f"{i}|{lv}" for i, lv in st.level_keys], "level_lp": b64(t.level_lp),
        "profile_items": {r: st.profile_item(r) for r in sc.lp.results},
        "context": list(st.context), "context_levels": [list(st.context_levels[c]) for c in st.context],
        "strata": [[st.context_levels[c].index(lv) for c, lv in zip(st.context, s, strict=True)] for s in st.strata],
        "n_strata": st.n_strata, "blasts_strata": np.flatnonzero(t.blasts_masks[1]).tolist(),
        "share_features": b64(ctx["share_features"]), "share_incidence": ctx["share_incidence"],
        "rate_features": b64(ctx["rate_features"]), "rate_incidence": ctx["rate_incidence"],
        "rate_fixed": [float(x) for x in ctx["rate_fixed"]], "form_features": b64(ctx["form_features"]),
        "form_incidence": ctx["form_incidence"],
        "lp": {"statuses": lpt["statuses"], "methods": lpt["methods"], "pattern_results": lpt["pattern_results"],
               "component_unique": lpt["component_unique"], "n_unique": int(lpt["patterns"].shape[3]),
               "patterns": b64(lpt["patterns"])},
        "shapes": {"level_lp": [n, k_n, st.n_levels], "share_features": list(ctx["share_features"].shape),
                   "rate_features": list(ctx["rate_features"].shape), "form_features": list(ctx["form_features"].shape),
                   "patterns": list(lpt["patterns"].shape)},
        "weights": {pid: b64(w) for pid, w in (weights or {}).items() if w is not None},
        "aliases": {alias: pid for pid, w in (weights or {}).items() if w is not None
                    for alias in _aliases(draws, pid) if alias != pid},
        "settings": {k: t.settings[k] for k in ("scope", "hallmarks", "not_modelled", "variants")},
        "evidence_hash": draws.meta.get("evidence_hash"), "version": draws.meta.get("version"),
    }


def page_schema(schema: Schema) -> dict[str, Any]:
    """What the page needs of the schema: the findings in clinical order with their roles and levels, the
    LP's methods, results and tap statuses, the next tests, and the level a patient-only level is
    answered as (the page reads and writes findings with the command line's names and levels)."""
    out = []
    for name in schema.findings:
        if name == schema.lp.name:
            out.append({"name": name, "role": "lp"})
            continue
        f = schema.by_name[name]
        out.append({"name": name, "role": f.role, "levels": list(f.levels), "allowed": list(f.allowed),
                    "answered_as": {lv: v["answered_as"] for lv, v in f.patient_only.items()},
                    "scope_notes": {lv: schema.scope_note(name, lv) for lv in f.allowed if schema.scope_note(name, lv)}})
    lp = schema.lp
    return {"findings": out, "lp": {"name": lp.name, "methods": list(lp.methods), "results": list(lp.results),
                                    "traumatic": list(lp.traumatic), "max_lps": lp.max_lps,
                                    "contamination": list(lp.contamination)},
            "profile": schema.profile, "context": list(schema.context), "scope": list(schema.scope),
            "next_tests": {k: {"reads": v.reads, "methods": list(v.methods)} for k, v in schema.next_tests.items()},
            "version": schema.version}
