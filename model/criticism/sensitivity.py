"""Sensitivity of patients' answers, P(infiltration | findings) (the mean of :func:`palsy.model.answer.answer`),
to ``w_case``, to the clinician's pretest probability and to each evidence source.

A *source* is one reference key (its cohort entries and the library cases citing it) or one expert
judgment on a finding (its Beta replaced by the base prior). Removing one is computed by PSIS from the
fitted posterior (log ratio minus the source's weighted log-likelihood, or the prior ratio) and, where
PSIS is unreliable (k-hat >= 0.7) and refits are allowed, by an exact refit reusing the compiled model
(weights of the source's entries and cases set to 0). ``w_case`` is varied by refits (or PSIS).
Changes by refit are taken against a baseline refit at the same reduced settings and the same rate
block draws, so that they are differences of like with like. The rate block (rates.yaml) has no
likelihood: its sources are not in this list.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import design as D
from palsy.model import findings as F
from palsy.model.draws import Draws
from palsy.model.evidence import Evidence
from palsy.model.prior import beta_lpdf
from palsy.model.psis import psis_weights

from .common import draws_from_fit, loglik_terms

K_THRESHOLD = 0.7
QUICK_RATE_FACTORS = 6  # rate factors redrawn in the quick subset


def load_patients(folder: str | Path) -> list[F.Patient]:
    """The patients of ``folder``/*.yaml (the source patients)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = []
    for path in sorted(Path(folder).glob("*.yaml")):
        out.append(F.parse_patient(yaml.load(path.read_text(encoding="utf-8"), Loader=loader), str(path)))
    return out


def load_vignettes(folder: str | Path) -> list[F.Patient]:
    """The hallmark vignettes of ``folder``/*.yaml (each file's ``patient`` key)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = []
    for path in sorted(Path(folder).glob("*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        if isinstance(doc, dict) and "patient" in doc:
            out.append(F.parse_patient(doc["patient"], str(path)))
    return out


@dataclasses.dataclass(frozen=True)
class Source:
    """An evidence source to leave out: cohort entries and cases of one reference, or one expert judgment."""

    name: str
    kind: str  # "reference" or "expert_judgment"
    entries: tuple[int, ...] = ()
    cases: tuple[int, ...] = ()
    expert: tuple[tuple[int, float, float], ...] = ()  # (free parameter, a, b) replaced by the base prior
    cause: str | None = None


def sources(evidence: Evidence, d: D.Design) -> list[Source]:
    """Every source whose removal can be computed: per reference key, its cohort count entries and
    the cases citing it; each expert-judgment Beta (replaced by the base prior) on its own."""
    out = []
    keys: dict[str, dict[str, list[int]]] = {}
    by_id = {e.id: e for e in evidence.entries}
    for j, eid in enumerate(d.entry_ids):
        for r in by_id[eid].refs:
            keys.setdefault(r, {"e": [], "c": []})["e"].append(j)
    for i, c in enumerate(evidence.cases):
        keys.setdefault(c.ref, {"e": [], "c": []})["c"].append(i)
    for r, v in sorted(keys.items()):
        out.append(Source(r, "reference", tuple(v["e"]), tuple(v["c"])))
    base = evidence.settings["base_prior"]
    v = d.variant
    for e in evidence.entries:
        if e.kind != "expert_judgment":
            continue
        if e.form is not None and not v.is_mixture:
            continue  # as model.design.build: a form's judgment does not speak for infiltration as a whole
        st = evidence.structure
        free_index = {f: i for i, f in enumerate(st.free_parameters(v.components, v.infiltration_components))}
        targets = [free_index[t] for t in D.judgment_targets(e, st, v)]
        out.append(Source(f"expert judgment {e.id}", "expert_judgment", cause=e.cause,
                          expert=tuple((i, float(base["a"]), float(base["b"])) for i in targets)))
    return out


def source_log_ratio(src: Source, params: dict[str, np.ndarray], d: D.Design,
                     terms: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Log importance ratio (per draw) of the posterior without ``src`` to the fitted posterior."""
    t = terms or loglik_terms(params, d)
    lr = -(t["entries"][:, list(src.entries)].sum(-1) + t["cases_weighted"][:, list(src.cases)].sum(-1))
    for i, a, b in src.expert:
        x = params["theta_free"][:, i]
        lr = lr + beta_lpdf(x, a, b) - beta_lpdf(x, d.prior_a[i], d.prior_b[i])
    return lr


_TABLES: dict[int, Any] = {}


def _tables(draws: Draws):
    """The answer's per-draw tables of ``draws``, computed once per draws object."""
    from palsy.model.answer import Tables

    key = id(draws)
    if key not in _TABLES or _TABLES[key][0] is not draws:
        _TABLES[key] = (draws, Tables(draws))
    return _TABLES[key][1]


def p_infiltration(patient: F.Patient, draws: Draws, pretest: float | None = None) -> np.ndarray:
    """P(infiltration | findings) per draw, as :func:`palsy.model.answer.answer` gives it (no leave-one-out:
    the caller applies the weights).

    Without ``pretest`` this is the answer's own value function on the full set of findings
    (``Game.value``), without the Shapley values and next tests the full answer also computes (a test
    checks it equals ``answer(...).posterior_log_odds``); with ``pretest``, the full answer.
    """
    from palsy.model import answer as A
    from palsy.model import game as G

    t = _tables(draws)
    if pretest is not None:
        ans = A.answer(patient, draws, pretest=pretest, leave_out=False, tables=t, shapley=False)
        return A.expit(ans.posterior_log_odds)
    plist = G.players(patient)
    active = A.active_causes(t.causes, None)
    game = G.Game(t, plist, patient, active, t.log_prior, np.zeros_like(t.level_lp[:, :, 0]))
    return A.expit(game.value(np.ones((1, len(plist)), bool))[0])


def _own_case_ratio(patient: F.Patient, draws: Draws) -> np.ndarray:
    """The log ratio that leaves the patient's own library case out (zeros if it is not one)."""
    idx = draws.case_index(patient.id)
    return np.zeros(draws.n) if idx is None else -draws.case_loglik[idx]


def weighted_mean(p: np.ndarray, log_ratio: np.ndarray) -> tuple[float, float]:
    """Mean of ``p`` under PSIS weights for ``log_ratio`` and k-hat (0 when the ratio is constant: exact)."""
    if np.ptp(log_ratio) < 1e-12:
        return float(np.mean(p)), 0.0
    w, k = psis_weights(log_ratio)
    return float(np.average(p, weights=w)), (k if np.isfinite(k) else 99.0)


def answer_sensitivity(evidence: Evidence, variant: str, draws: Draws, patients: Sequence[F.Patient], *,
                       w_values: Sequence[float] = (0.25, 0.5, 1.0),
                       pretests: Sequence[float] = (0.01, 0.05, 0.2, 0.5),
                       refit: bool = True, refit_settings=None, k_threshold: float = K_THRESHOLD,
                       top: int = 8, quick: tuple[int, int] | None = None,
                       rate_factors: bool = True) -> dict[str, Any]:
    """How each patient's P(infiltration | findings) (mean) moves with ``w_case``, the pretest and each source.

    Parameters
    ----------
    draws : Draws
        The fitted posterior of ``variant`` on ``evidence`` (the baseline answers).
    refit : bool
        Refit (reusing the compiled model, reduced ``refit_settings``) for each ``w_case`` and for
        each reference whose PSIS removal is unreliable (k-hat >= ``k_threshold``). If False, every
        change is by PSIS and unreliable ones are reported as such.
    top : int
        Sources kept per patient in the tornado (largest |change| first).
    quick : (int, int), optional
        Refit only this many expert judgments and references (those whose PSIS change is largest
        over the patients, whatever its k); every other source keeps its PSIS change, flagged
        unreliable where k >= ``k_threshold``; ``w_case`` by PSIS; only the first
        ``QUICK_RATE_FACTORS`` rate factors. Without it every source whose PSIS removal is unreliable,
        expert judgments included (their Beta replaced by the base prior through ``prior_a``/``prior_b``),
        is removed by an exact refit.
    rate_factors : bool
        Also each free factor of the rate model (``priors/rates.yaml``) set at its prior median on
        every draw (exact: the rate block has no likelihood, nothing is refitted).

    Returns
    -------
    dict
        ``patients``: per patient id its ``baseline`` mean P(infiltration), ``prior`` (before any
        finding), ``w_case`` rows, ``pretest`` rows, and ``sources`` rows (``delta`` = without the
        source minus with it, ``method`` PSIS or refit, ``pareto_k``, ``reliable``) sorted by
        |delta|, ``tornado`` (the ``top`` reliable ones); ``settings``: how the refits were run.
    """
    from palsy.model import cache as C
    from palsy.model.answer import answer, expit

    rs = refit_settings or C.Settings(draws=500, tune=500, chains=2)
    d = D.build(evidence, evidence.variant(variant))
    if len(d.case_ids) != draws.case_loglik.shape[0]:
        raise ValueError("draws do not match the evidence's case library")
    terms = loglik_terms(draws.params, d)
    srcs = sources(evidence, d)
    own = {p.id: _own_case_ratio(p, draws) for p in patients}
    res: dict[str, Any] = {p.id: {"description": p.description, "w_case": [], "pretest": [], "sources": []}
                           for p in patients}
    base_p = {}
    for p in patients:
        ans = answer(p, draws, tables=_tables(draws), shapley=False)
        base_p[p.id] = expit(ans.posterior_log_odds)  # per draw; the weights below leave a library case out
        res[p.id]["baseline"] = weighted_mean(base_p[p.id], own[p.id])[0]
        res[p.id]["answer"] = ans.probability["mean"]  # the answer as palsy posterior gives it
        res[p.id]["prior"] = ans.prior_probability["mean"]
        res[p.id]["leading_cause"] = ans.leading_cause
        for pt in pretests:
            res[p.id]["pretest"].append({"pretest": pt, "mean": weighted_mean(p_infiltration(p, draws, pt), own[p.id])[0]})

    refits: dict[str, Draws] = {}

    def do_refit(key: str, data: dict[str, np.ndarray] | None, dd: D.Design) -> Draws:
        from palsy.model import fit

        if key not in refits:
            dt, _ = fit.sample(variant, evidence, rs, data=data)
            refits[key] = draws_from_fit(dt, dd, evidence, rs, like=draws)
        return refits[key]

    def refit_mean(p: F.Patient, dr: Draws, drop_own: bool = True) -> float:
        return weighted_mean(p_infiltration(p, dr), _own_case_ratio(p, dr) if drop_own else np.zeros(dr.n))[0]

    base_data = d.data()
    for w in w_values:
        dw = dataclasses.replace(d, w_case=float(w))
        for p in patients:
            if refit and quick is None:
                ref = do_refit("base", None, d)
                alt = do_refit(f"w={w}", {"case_w": np.full(len(d.case_ids), float(w))}, dw)
                delta = refit_mean(p, alt) - refit_mean(p, ref)
                res[p.id]["w_case"].append({"w_case": w, "mean": res[p.id]["baseline"] + delta, "delta": delta,
                                            "method": "refit", "pareto_k": None, "reliable": True})
            else:
                lr = (w - d.w_case) * terms["cases"].sum(-1) + own[p.id] * (w / d.w_case)
                mean, k = weighted_mean(base_p[p.id], lr)
                res[p.id]["w_case"].append({"w_case": w, "mean": mean, "delta": mean - res[p.id]["baseline"],
                                            "method": "PSIS", "pareto_k": k, "reliable": bool(k < k_threshold)})
    psis_rows: dict[str, list[dict[str, Any]]] = {}
    for src in srcs:
        lr_src = source_log_ratio(src, draws.params, d, terms)
        for p in patients:
            idx = draws.case_index(p.id)
            own_lr = own[p.id] if idx is None or idx not in src.cases else 0.0
            mean, k = weighted_mean(base_p[p.id], lr_src + own_lr)
            psis_rows.setdefault(src.name, []).append(
                {"source": src.name, "kind": src.kind, "cause": src.cause, "mean": mean,
                 "delta": mean - res[p.id]["baseline"], "method": "PSIS", "pareto_k": k,
                 "reliable": bool(k < k_threshold), "entries": len(src.entries), "cases": len(src.cases)})
    if quick is not None:  # the sources whose PSIS change is largest over the patients (whatever its k)
        size = {n: max(abs(r["delta"]) for r in rows) for n, rows in psis_rows.items()}
        chosen = set()
        for kind, m in zip(("expert_judgment", "reference"), quick, strict=True):
            names = sorted((s2.name for s2 in srcs if s2.kind == kind), key=lambda n: -size[n])
            chosen |= set(names[:m])
    for src in srcs:
        want = refit and (src.name in chosen if quick is not None
                          else not all(r["reliable"] for r in psis_rows[src.name]))
        alt = None
        if want:
            data = {k2: np.array(v2, float, copy=True) for k2, v2 in base_data.items()}
            data["entry_w"][list(src.entries)] = 0.0
            data["case_w"][list(src.cases)] = 0.0
            for i, a, b in src.expert:  # the judgment's Beta replaced by the base prior, exactly
                data["prior_a"][i], data["prior_b"][i] = a, b
            dd = dataclasses.replace(d, entry_w=data["entry_w"], prior_a=data["prior_a"], prior_b=data["prior_b"])
            ref = do_refit("base", None, d)
            alt = do_refit(f"source={src.name}", data, dd)
        for p, row in zip(patients, psis_rows[src.name], strict=True):
            if alt is not None:
                idx = draws.case_index(p.id)
                drop_own = not (idx is not None and idx in src.cases)
                delta = refit_mean(p, alt, drop_own) - refit_mean(p, ref)
                row = {**row, "delta": delta, "mean": res[p.id]["baseline"] + delta, "method": "refit",
                       "reliable": True, "psis_delta": row["delta"]}
            res[p.id]["sources"].append(row)
    if rate_factors:
        factors = list(rate_factor_medians(d).items())
        if quick is not None:  # the quick subset: the first few factors (rates.yaml order)
            factors = factors[:QUICK_RATE_FACTORS]
        for name, vals in factors:
            alt_draws = with_rate_factor(draws, d, name, vals)
            for p in patients:
                mean = weighted_mean(p_infiltration(p, alt_draws), own[p.id])[0]
                res[p.id]["sources"].append(
                    {"source": f"rate factor {name} at its prior median", "kind": "rate_factor",
                     "cause": name.split(":")[0], "mean": mean, "delta": mean - res[p.id]["baseline"],
                     "method": "exact (rate block redrawn)", "pareto_k": None, "reliable": True,
                     "entries": 0, "cases": 0})
    for p in patients:
        rows = sorted(res[p.id]["sources"], key=lambda r: -abs(r["delta"]) if r["reliable"] else 0.0)
        res[p.id]["sources"] = rows
        res[p.id]["tornado"] = [r for r in rows if r["reliable"]][:top]
        res[p.id]["unreliable"] = sum(not r["reliable"] for r in rows)
        res[p.id]["power_scaling"] = power_scaling(base_p[p.id], own[p.id], draws.params, d, terms)
    return {"variant": variant, "patients": res, "refit": refit, "quick": list(quick) if quick else None,
            "settings": dataclasses.asdict(rs) if refit else None, "refits": len(refits),
            "k_threshold": k_threshold, "sources": len(srcs)}


def rate_factor_medians(d: D.Design) -> dict[str, float]:
    """Each free factor of the rate model and its prior median (lognormal: exp(mu); Beta: its median)."""
    from scipy.stats import beta

    r = d.rates
    out = {n: float(np.exp(mu)) for n, mu in zip(r.lognormal_names, r.lognormal_mu, strict=True)}
    out.update({n: float(beta.median(a, b)) for n, a, b in zip(r.beta_names, r.beta_a, r.beta_b, strict=True)})
    return out


def with_rate_factor(draws: Draws, d: D.Design, name: str, value: float) -> Draws:
    """``draws`` with one free factor of the rate block fixed at ``value`` on every draw (the judgment's
    uncertainty removed; everything else, including the other rate draws, unchanged)."""
    params = dict(draws.params)
    for key, names in (("rate_lognormal", d.rates.lognormal_names), ("rate_beta", d.rates.beta_names)):
        if name in names:
            a = params[key].copy()
            a[:, names.index(name)] = value
            params[key] = a
    return Draws(params, draws.meta, draws.case_loglik, draws.rates)


def power_scaling(p: np.ndarray, own: np.ndarray, params: dict[str, np.ndarray], d: D.Design,
                  terms: dict[str, np.ndarray], alphas: Sequence[float] = (0.8, 1.25),
                  k_threshold: float = K_THRESHOLD) -> dict[str, Any]:
    """Power-scaling sensitivity of the patient's mean P(infiltration) itself.

    Scaling a component (the sampled parameters' prior, or the whole weighted likelihood) by a power
    alpha reweights the draws by alpha-1 times its log density; d E[P] / d alpha at alpha = 1 is the
    covariance of P with that log density (exact, under the draws' weights). Beside it, E[P] at each
    alpha by PSIS with its Pareto k. (The rate block is drawn from its prior and has no likelihood: it
    is not power-scaled here; its factors are the rate-factor rows of the tornado.)
    """
    from palsy.model.prior import log_density

    lp = log_density({k: v for k, v in params.items() if k in ("theta_free", "omega", "tau", "re_z", "gamma")}, d)
    comps = {"prior": sum(v.reshape(len(p), -1).sum(-1) for v in lp.values()),
             "likelihood": terms["entries"].sum(-1) + terms["cases_weighted"].sum(-1)}
    w0 = np.exp(own - own.max()) if np.ptp(own) > 0 else np.ones(len(p))
    w0 = w0 / w0.sum()
    base = float(np.sum(w0 * p))
    out = {"baseline": base}
    for name, ld in comps.items():
        deriv = float(np.sum(w0 * (p - base) * (ld - np.sum(w0 * ld))))
        rows = []
        for a in alphas:
            mean, k = weighted_mean(p, own + (a - 1.0) * ld)
            rows.append({"alpha": a, "mean": mean, "delta": mean - base, "pareto_k": k,
                         "reliable": bool(k < k_threshold)})
        out[name] = {"derivative": deriv, "scaled": rows}
    return out
