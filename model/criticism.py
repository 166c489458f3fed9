"""Model criticism, numbers only (DESIGN §6, statistician report): predictive checks, LOO, power-scaling
sensitivity and the sensitivity of patients' answers to ``w_case``, the base rate and each source.

Nothing here draws: :mod:`reports.check` presents these numbers. PyMC and ArviZ are imported lazily
(only the functions that need them do).

Conventions
-----------
Parameter draws are dicts of numpy arrays with a leading ``sample`` dim (as in :class:`model.draws.Draws`).

*Predictive checks* (:func:`predictive_checks`). A *statistic* is an event on one case's findings (a
level or group of levels of a finding, "every LP negative", or a conjunction of two of those). Its
observed value is the number of library cases, among those where the event is determined (every
finding it involves known, not in the case's ``proven_by`` and not re-tabulated by a review), for which
it holds. For every parameter draw s and case i the model gives q_is = P(event | L, case i's form or
the mixture over its allowed forms); the predictive count is a Poisson-binomial sum, replicated once
per draw (T_rep,s = sum_i Bernoulli(q_is)). We report its mean, a 90% interval and the predictive
p-values P(T_rep >= T_obs), P(T_rep <= T_obs) and the two-sided 2 min(...) (capped at 1). With prior
draws (:func:`prior_draws`) the same numbers are the *prior* predictive check: they use the base priors
(Beta nodes, expert-judgment Betas, pretest priors) and no cohort counts, and are labelled prior-only.

*LOO* (:func:`loo`). The cases enter the fit as a power prior, w_case x l_i. Leaving case i out of the
fitted posterior multiplies it by exp(-w_case l_i), so the PSIS importance log-ratios are minus the
*weighted* per-case log-likelihood (``cases_weighted``); the quantity predicted is the case's
*unweighted* likelihood exp(l_i): elpd_i = log sum_s w~_is exp(l_is), with w~ the Pareto-smoothed,
normalised weights. Under the subtype variant the fitted l_i of a case with a coded form includes log
log P(form | L, strata); the predicted l_i marginalises the form (every form allowed) so both variants predict the
same data (the findings, lineage and remission), which is what makes their elpd comparable. Cases
whose log-likelihood does not vary over draws (nothing known that enters the likelihood) are left out
of both variants' LOO (their elpd is identical, 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model import design as D
from model import findings as F
from model import likelihood as LK
from model import structure as S
from model.draws import Draws
from model.evidence import Evidence
from model.prior import PARAMETERS, beta_lpdf
from model.prior import draws as prior_draws
from model.prior import log_density as log_prior
from model.psis import psis_weights

CI = 0.9
PARAM_NAMES = PARAMETERS
PRIOR_ONLY = "prior-only by design"


# --- prior draws and densities ---------------------------------------------------------------------

# --- likelihood pieces in numpy --------------------------------------------------------------------

def entry_rates(params: dict[str, np.ndarray], d: D.Design) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the rate x/n each cohort entry estimates: tree entries (S, E), lineage/remission (S, E2)."""
    return LK.entry_rate(LK.NUMPY, params, d), LK.stratum_entry_rate(LK.NUMPY, params, d)


def loglik_terms(params: dict[str, np.ndarray], d: D.Design) -> dict[str, np.ndarray]:
    """The likelihood terms of the fit per draw: ``entries`` (S, E) and ``stratum_entries`` (S, E2),
    weighted as in the fit; ``cases`` (S, C) unweighted and ``cases_weighted`` (S, C) = w x l."""
    cases = np.asarray(LK.case_loglik(LK.NUMPY, params, d))
    return {
        "entries": np.asarray(LK.entry_loglik(LK.NUMPY, params, d)).reshape(cases.shape[0], -1),
        "stratum_entries": np.asarray(LK.stratum_entry_loglik(LK.NUMPY, params, d)).reshape(cases.shape[0], -1),
        "cases": cases,
        "cases_weighted": d.w_case * cases,
    }


def case_loglik_marginal(params: dict[str, np.ndarray], d: D.Design) -> np.ndarray:
    """Unweighted per-case log-likelihood (S, C) with every case's form marginalised (LOO target)."""
    dm = dataclasses.replace(d, case_forms=np.ones_like(d.case_forms))
    return np.asarray(LK.case_loglik(LK.NUMPY, params, dm))


# --- predictive checks -----------------------------------------------------------------------------

ALL_NEGATIVE = "all_negative"


@dataclasses.dataclass(frozen=True)
class Statistic:
    """An event on a case's findings: a conjunction of ``parts`` (finding, levels)."""

    name: str
    parts: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def kind(self) -> str:
        return "pair" if len(self.parts) > 1 else "single"


def _event(finding: str, levels: str | Sequence[str]) -> tuple[str, tuple[str, ...]]:
    if isinstance(levels, str):
        levels = S.expand(finding, levels) if finding != "csf" else (levels,)
    return finding, tuple(levels)


def default_statistics() -> list[Statistic]:
    """Every level of every finding, and pairs that the conditional independence of the
    ``independent`` variant could get wrong (bilateral with other nerves; CSF with each MRI pattern)."""
    out = []
    for name in ("lineage", "remission", "laterality", "other_cranial_nerves", "peripheral_nerves", "mri"):
        for lv in F.LEVELS[name]:
            out.append(Statistic(f"{name} = {lv}", (_event(name, lv),)))
    out.append(Statistic("mri = beyond_facial", (_event("mri", "beyond_facial"),)))
    out.append(Statistic("csf: every LP negative", (_event("csf", ALL_NEGATIVE),)))
    pairs = [
        (("laterality", "bilateral"), ("other_cranial_nerves", "one_or_more")),
        (("laterality", "bilateral"), ("peripheral_nerves", "one_or_more")),
        (("other_cranial_nerves", "one_or_more"), ("peripheral_nerves", "one_or_more")),
        (("laterality", "bilateral"), ("mri", "beyond_facial")),
        (("other_cranial_nerves", "one_or_more"), ("mri", "beyond_facial")),
        (("peripheral_nerves", "one_or_more"), ("csf", ALL_NEGATIVE)),
    ] + [(("csf", ALL_NEGATIVE), ("mri", lv)) for lv in F.LEVELS["mri"]]
    for a, b in pairs:
        out.append(Statistic(f"{a[0]} = {a[1]} & {b[0]} = {b[1]}", (_event(*a), _event(*b))))
    return out


def case_facts(evidence: Evidence) -> list[dict[str, Any]]:
    """Per case, the findings that enter its likelihood: level sets (tree findings, and lineage and
    remission for in-population cases) and ``csf`` as a tuple of (result, method)."""
    tabulated = {(cid, e.finding) for e in evidence.entries for cid in e.tabulates_cases}
    out = []
    for case in evidence.cases:
        skip = set(case.proven_by) | {f for (cid, f) in tabulated if cid == case.id}
        facts: dict[str, Any] = {}
        names = list(S.TREE_FINDINGS) + (["lineage", "remission"] if case.in_population else [])
        for name in names:
            value = case.values.get(name)
            if value is not None and name not in skip:
                facts[name] = frozenset(S.expand(name, value))
        if case.csf and "csf" not in skip:
            facts["csf"] = tuple(case.csf)
        out.append(facts)
    return out


def _observed(facts: dict[str, Any], part: tuple[str, tuple[str, ...]]) -> bool | None:
    finding, levels = part
    if finding not in facts:
        return None
    if finding == "csf":
        return all(r == "negative" for r, _ in facts["csf"])
    known, ev = facts[finding], set(levels)
    if known <= ev:
        return True
    if not known & ev:
        return False
    return None


class _Probabilities:
    """Per-draw probability tables used by the predictive checks."""

    def __init__(self, params: dict[str, np.ndarray], d: D.Design) -> None:
        self.level_p = np.exp(LK.level_logp(LK.NUMPY, params["theta"]))  # (S, K, level)
        log_l, _, _ = LK.strata(LK.NUMPY, params)
        self.stratum_l = np.exp(log_l)  # (S, lineage, remission)
        nl = len(d.variant.l_components)
        self.nl = nl
        # P(stratum, form | L) (S, form, 12); a case's forms are weighted by its compatible strata
        if d.variant.is_mixture:
            self.form_strata = np.exp(LK.form_strata(LK.NUMPY, params)).reshape(self.level_p.shape[0], nl, -1)
        else:
            self.form_strata = None
        self.d = d

    def form_weights(self, i: int) -> np.ndarray:
        """P(form | L, case i's compatible strata) restricted to its coded form, unnormalised (S, form)."""
        if self.form_strata is None:
            return np.ones((self.level_p.shape[0], self.nl))
        return (self.form_strata * self.d.case_strata[i]).sum(-1) * self.d.case_forms[i]

    def part(self, facts: dict[str, Any], part: tuple[str, tuple[str, ...]]) -> np.ndarray:
        """P(part | L component) per draw (S, L components)."""
        finding, levels = part
        n = self.level_p.shape[0]
        if finding == "csf":
            p = np.ones((n, self.nl))
            for _, method in facts["csf"]:
                p = p * self.level_p[:, :self.nl, S.LEVEL_INDEX[(S.csf_item(method), "negative")]]
            return p
        if finding in ("lineage", "remission"):
            mm = np.zeros((len(S.LINEAGES), len(S.REMISSIONS)))
            for lv in levels:
                mm = np.maximum(mm, S.stratum_mask(lv if finding == "lineage" else None,
                                                   lv if finding == "remission" else None))
            p = (self.stratum_l * mm).sum(axis=(-2, -1))
            return np.repeat(p[:, None], self.nl, axis=1)
        idx = [S.LEVEL_INDEX[(finding, lv)] for lv in levels]
        return self.level_p[:, :self.nl, idx].sum(axis=-1)


def predictive_checks(params: dict[str, np.ndarray], d: D.Design, evidence: Evidence, *,
                      statistics: Iterable[Statistic] | None = None, seed: int = 1,
                      ci: float = CI) -> list[dict[str, Any]]:
    """Predictive check of each statistic against the case library (see the module docstring).

    Parameters
    ----------
    params : dict of ndarray
        Parameter draws (posterior draws for the posterior predictive check, :func:`prior_draws` for
        the prior predictive check).
    d : Design
        The variant's design (its case order, forms and case masks).
    evidence : Evidence
        The evidence ``d`` was built from (the cases' findings).

    Returns
    -------
    list of dict
        One row per statistic with cases (where determined), observed count, predictive mean,
        interval, and the p-values ``p_upper`` = P(T_rep >= T_obs), ``p_lower`` and ``p_value``
        (two-sided).
    """
    rng = np.random.default_rng(seed)
    tables = _Probabilities(params, d)
    facts = case_facts(evidence)
    n = tables.level_p.shape[0]
    rows = []
    for stat in statistics or default_statistics():
        qs, ys = [], []
        for i, f in enumerate(facts):
            obs = [_observed(f, part) for part in stat.parts]
            if any(o is None for o in obs):
                continue
            prob = np.ones((n, tables.nl))
            for part in stat.parts:
                prob = prob * tables.part(f, part)
            w = tables.form_weights(i)
            qs.append((prob * w).sum(axis=1) / w.sum(axis=1))
            ys.append(all(obs))
        row: dict[str, Any] = {"statistic": stat.name, "kind": stat.kind, "cases": len(ys)}
        if not ys:
            rows.append({**row, "observed": None, "mean": None, "lower": None, "upper": None,
                         "p_upper": None, "p_lower": None, "p_value": None})
            continue
        q = np.stack(qs, axis=1)  # (S, cases)
        t_obs = int(np.sum(ys))
        t_rep = (rng.random(q.shape) < q).sum(axis=1)
        lo, hi = np.quantile(t_rep, [(1 - ci) / 2, (1 + ci) / 2])
        p_up = float(np.mean(t_rep >= t_obs))
        p_lo = float(np.mean(t_rep <= t_obs))
        rows.append({**row, "observed": t_obs, "mean": float(q.sum(axis=1).mean()), "lower": float(lo),
                     "upper": float(hi), "p_upper": p_up, "p_lower": p_lo, "p_value": min(1.0, 2 * min(p_up, p_lo))})
    return rows


def cohort_checks(params: dict[str, np.ndarray], d: D.Design, *, seed: int = 1, ci: float = CI) -> list[dict[str, Any]]:
    """Predictive check of each cohort entry: x_rep ~ Binomial(n, rate_s) against the observed x.

    The fit down-weights an entry by its weight; the replicate uses the entry's full n (what the
    cohort reported), so a low-weight entry that disagrees with the rest shows up here.
    """
    rng = np.random.default_rng(seed)
    r, rs = entry_rates(params, d)
    rows = []
    for ids, rate, x, n, w in ((d.entry_ids, r, d.entry_x, d.entry_n, d.entry_w),
                               (d.sentry_ids, rs, d.sentry_x, d.sentry_n, d.sentry_w)):
        for j, eid in enumerate(ids):
            nn = int(round(float(n[j])))
            rep = rng.binomial(nn, np.clip(rate[:, j], 0, 1))
            lo, hi = np.quantile(rep, [(1 - ci) / 2, (1 + ci) / 2])
            p_up, p_lo = float(np.mean(rep >= x[j])), float(np.mean(rep <= x[j]))
            rows.append({"entry": eid, "x": float(x[j]), "n": float(n[j]), "weight": float(w[j]),
                         "mean": float(rep.mean()), "lower": float(lo), "upper": float(hi),
                         "p_upper": p_up, "p_lower": p_lo, "p_value": min(1.0, 2 * min(p_up, p_lo))})
    return rows


# --- LOO ------------------------------------------------------------------------------------------

def _reshape(a: np.ndarray, chains: int) -> np.ndarray:
    """(sample, ...) -> (chain, draw, ...)."""
    return a.reshape(chains, a.shape[0] // chains, *a.shape[1:])


def loo_datatree(draws: Draws, d: D.Design, chains: int | None = None):
    """A DataTree for ``az.loo``: ``posterior`` (the parameters), ``log_likelihood.cases`` (the
    unweighted per-case log-likelihood, form marginalised) and ``log_likelihood.cases_weighted``
    (w_case x the fitted per-case log-likelihood, the PSIS source), chain/draw/case dims."""
    import xarray as xr

    chains = chains or int(draws.meta["settings"]["chains"])
    lt = loglik_terms(draws.params, d)
    marg = case_loglik_marginal(draws.params, d)
    ids = list(d.case_ids)
    post = {k: (("chain", "draw", *[f"{k}_dim_{i}" for i in range(v.ndim - 1)]), _reshape(v, chains))
            for k, v in draws.params.items()}
    ll = xr.Dataset({"cases": (("chain", "draw", "case"), _reshape(marg, chains)),
                     "cases_weighted": (("chain", "draw", "case"), _reshape(lt["cases_weighted"], chains))},
                    coords={"case": ids})
    return xr.DataTree.from_dict({"posterior": xr.Dataset(post), "log_likelihood": ll})


def loo(draws: Draws, d: D.Design, *, cases: Sequence[str] | None = None):
    """PSIS-LOO over the case library with PSIS weights from the weighted log-likelihood.

    Parameters
    ----------
    cases : sequence of str, optional
        Restrict to these case ids (the comparison uses the cases informative under both variants).

    Returns
    -------
    ELPDDataLOO
        ``az.loo``'s result (pointwise), computed on ``log_likelihood.cases`` with
        ``log_weights``/``pareto_k`` from ``az.psislw``-style smoothing of ``cases_weighted``.
    """
    import arviz as az
    from arviz_stats.loo.loo_helper import _get_r_eff

    dt = loo_datatree(draws, d)
    if cases is not None:
        dt = dt.isel(case=[list(d.case_ids).index(c) for c in cases])
    ll_w = dt["log_likelihood"]["cases_weighted"]
    reff = _get_r_eff(dt, ll_w.sizes["chain"] * ll_w.sizes["draw"])
    # psislw takes a log-likelihood and smooths the log-ratios -ll: here -w_case x l_i.
    log_weights, pareto_k = ll_w.azstats.psislw(r_eff=reff, dim=["chain", "draw"])
    return az.loo(dt, var_name="cases", pointwise=True, reff=reff, log_weights=log_weights, pareto_k=pareto_k)


def informative_cases(draws: Draws, d: D.Design) -> list[str]:
    """Cases whose weighted log-likelihood varies over draws (PSIS needs a non-degenerate tail)."""
    w = d.w_case * np.asarray(LK.case_loglik(LK.NUMPY, draws.params, d))
    sd = w.std(axis=0)
    return [c for c, s in zip(d.case_ids, sd, strict=True) if s > 1e-8]


def compare_variants(fits: dict[str, tuple[Draws, D.Design]]) -> dict[str, Any]:
    """LOO of each variant on the cases informative under all of them, and ``az.compare``.

    Returns
    -------
    dict
        ``loo``: per variant elpd, se, p_loo, max Pareto k, cases with k > good_k; ``compare``: the
        ``az.compare`` table as records; ``pointwise``: per case elpd_i and k per variant;
        ``cases``: the case ids used; ``left_out``: cases left out (constant log-likelihood).
    """
    import arviz as az

    common = None
    for dr, d in fits.values():
        inf = informative_cases(dr, d)
        common = inf if common is None else [c for c in common if c in inf]
    all_ids = list(next(iter(fits.values()))[1].case_ids)
    res = {name: loo(dr, d, cases=common) for name, (dr, d) in fits.items()}
    table = az.compare(res, method="stacking", round_to="none") if len(res) > 1 else None
    out: dict[str, Any] = {"cases": common, "left_out": [c for c in all_ids if c not in common], "loo": {},
                           "pointwise": {}, "compare": []}
    for name, r in res.items():
        k = np.asarray(r.pareto_k.values)
        out["loo"][name] = {"elpd": float(r.elpd), "se": float(r.se), "p_loo": float(r.p), "n": int(r.n_data_points),
                            "k_max": float(np.max(k)), "good_k": float(r.good_k), "k_bad": int(np.sum(k > r.good_k))}
        out["pointwise"][name] = {c: {"elpd": float(e), "k": float(kk)}
                                  for c, e, kk in zip(common, np.asarray(r.elpd_i.values), k, strict=True)}
    if table is not None:
        for model_name, row in table.iterrows():
            out["compare"].append({"model": str(model_name), **{str(c): _plain(v) for c, v in row.items()}})
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, (np.integer, int)) and not isinstance(v, bool):
        return int(v)
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    return str(v)


# --- power-scaling sensitivity ----------------------------------------------------------------------

def _element_labels(name: str, shape: tuple[int, ...], d: D.Design) -> list[tuple[tuple[int, ...], str]]:
    coords = {"theta": (list(d.variant.components), list(S.NODE_NAMES)), "lineage_share": (list(S.LINEAGES),),
              "remission_share": (list(S.LINEAGES), list(S.REMISSIONS)), "relapse_hazard": (list(S.LINEAGES),),
              "remission_multiplier": (list(S.MULTIPLIED_REMISSIONS),),
              "omega": (list(S.LINEAGES), list(d.variant.l_components))}
    out = []
    for idx in np.ndindex(*shape):
        label = name if not idx else f"{name}[{', '.join(coords[name][k][i] for k, i in enumerate(idx))}]"
        out.append((idx, label))
    return out


def _total_loglik(params: dict[str, np.ndarray], d: D.Design) -> np.ndarray:
    t = loglik_terms(params, d)
    return t["entries"].sum(-1) + t["stratum_entries"].sum(-1) + t["cases_weighted"].sum(-1)


def data_informed(params: dict[str, np.ndarray], d: D.Design) -> dict[str, bool]:
    """Whether the weighted likelihood depends on each scalar parameter (numerically, by perturbing it
    at a few draws): a parameter it does not depend on is prior-only by design."""
    sub = {k: v[:5].astype(float).copy() for k, v in params.items()}
    base = _total_loglik(sub, d)
    out = {}
    for name, arr in sub.items():
        for idx, label in _element_labels(name, arr.shape[1:], d):
            p2 = {k: v.copy() for k, v in sub.items()}
            sl = (slice(None), *idx)
            x = p2[name][sl]
            p2[name][sl] = np.where(x < 0.5, x * 1.3, x * 0.9) if name in ("theta", "p_facial") else x * 1.3
            delta = np.abs(_total_loglik(p2, d) - base)
            out[label] = bool(np.nanmax(delta) > 1e-9)
    return out


def psense(draws: Draws, d: D.Design, *, chains: int | None = None) -> list[dict[str, Any]]:
    """Power-scaling prior and likelihood sensitivity (``az.psense``) of every scalar parameter and
    the base rate P(L).

    The DataTree has ``log_prior`` (:func:`log_prior`, numpy) and ``log_likelihood`` (every
    likelihood term of the fit as weighted in it: cohort entries, lineage/remission entries and
    w_case x the cases). Each row has ``prior``, ``likelihood``, ArviZ's ``diagnosis`` and our
    ``label``: parameters the likelihood does not depend on (and the base rate, whose scale has no
    data) are labelled "prior-only by design" instead of a prior-data conflict.
    """
    import arviz as az
    import xarray as xr

    chains = chains or int(draws.meta["settings"]["chains"])
    p = draws.params
    _, _, logit_prior = LK.strata(LK.NUMPY, p)
    base_rate = 1 / (1 + np.exp(-logit_prior))
    post = {}
    for name, arr in list(p.items()) + [("base_rate", base_rate)]:
        dims = [f"{name}_dim_{i}" for i in range(arr.ndim - 1)]
        post[name] = (("chain", "draw", *dims), _reshape(arr, chains))
    lp = log_prior(p, d)
    lp_ds = {k: (("chain", "draw", *[f"lp_{k}_{i}" for i in range(v.ndim - 1)]), _reshape(v, chains)) for k, v in lp.items()}
    lt = loglik_terms(p, d)
    ll_ds = {"entries": (("chain", "draw", "entry"), _reshape(lt["entries"], chains)),
             "stratum_entries": (("chain", "draw", "stratum_entry"), _reshape(lt["stratum_entries"], chains)),
             "cases": (("chain", "draw", "case"), _reshape(lt["cases_weighted"], chains))}
    dt = xr.DataTree.from_dict({"posterior": xr.Dataset(post), "log_prior": xr.Dataset(lp_ds),
                                "log_likelihood": xr.Dataset(ll_ds)})
    pri = az.psense(dt, group="prior")
    lik = az.psense(dt, group="likelihood")
    informed = data_informed(p, d)
    rows = []
    for name in post:
        arr = base_rate if name == "base_rate" else p[name]
        for idx, label in _element_labels(name, arr.shape[1:], d) if name != "base_rate" else [((), "base rate P(L)")]:
            ps = float(np.asarray(pri[name].values)[idx])
            ls = float(np.asarray(lik[name].values)[idx])
            if ps >= 0.05 and ls >= 0.05:
                diagnosis = "potential prior-data conflict"
            elif ps > 0.05 > ls:
                diagnosis = "potential strong prior / weak likelihood"
            else:
                diagnosis = "ok"
            prior_only = (name == "base_rate") or not informed.get(label, True)
            rows.append({"parameter": label, "prior": ps, "likelihood": ls, "diagnosis": diagnosis,
                         "label": PRIOR_ONLY if prior_only else diagnosis})
    return rows


# --- sensitivity of patients' answers ---------------------------------------------------------------

def load_patients(folder: str | Path) -> list[F.Patient]:
    """The patients of ``folder``/*.yaml (the source patients)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    out = []
    for path in sorted(Path(folder).glob("*.yaml")):
        out.append(F.parse_patient(yaml.load(path.read_text(encoding="utf-8"), Loader=loader), str(path)))
    return out


@dataclasses.dataclass(frozen=True)
class Source:
    """An evidence source to leave out: cohort entries and cases of one reference, or one expert judgment."""

    name: str
    kind: str  # "reference" or "expert_judgment"
    entries: tuple[int, ...] = ()
    stratum_entries: tuple[int, ...] = ()
    cases: tuple[int, ...] = ()
    expert: tuple[tuple[int, int, float, float], ...] = ()  # (component, node, a, b) replaced by the base prior


def sources(evidence: Evidence, d: D.Design) -> list[Source]:
    """Every source whose removal can be computed: per reference key, its cohort count entries and
    the cases citing it; each expert-judgment Beta (replaced by the base prior) on its own."""
    out = []
    keys: dict[str, dict[str, list[int]]] = {}
    by_id = {e.id: e for e in evidence.entries}
    for j, eid in enumerate(d.entry_ids):
        for r in by_id[eid].refs:
            keys.setdefault(r, {"e": [], "s": [], "c": []})["e"].append(j)
    for j, eid in enumerate(d.sentry_ids):
        for r in by_id[eid].refs:
            keys.setdefault(r, {"e": [], "s": [], "c": []})["s"].append(j)
    for i, c in enumerate(evidence.cases):
        keys.setdefault(c.ref, {"e": [], "s": [], "c": []})["c"].append(i)
    for r, v in sorted(keys.items()):
        out.append(Source(r, "reference", tuple(v["e"]), tuple(v["s"]), tuple(v["c"])))
    base = evidence.settings["base_prior"]
    for e in evidence.entries:
        if e.kind != "expert_judgment":
            continue
        if e.form is not None and not d.variant.is_mixture:
            continue
        node = S.find_node(e.item, e.level, e.of)
        comps = [k for k, c in enumerate(d.variant.components)
                 if (e.hypothesis == "B" and c == "B") or (e.hypothesis == "L" and c != "B" and (e.form in (None, c)))]
        out.append(Source(f"expert judgment {e.id}", "expert_judgment",
                          expert=tuple((k, node, float(base["a"]), float(base["b"])) for k in comps)))
    return out


def source_log_ratio(src: Source, params: dict[str, np.ndarray], d: D.Design,
                     terms: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Log importance ratio (per draw) of the posterior without ``src`` to the fitted posterior."""
    t = terms or loglik_terms(params, d)
    lr = -(t["entries"][:, list(src.entries)].sum(-1) + t["stratum_entries"][:, list(src.stratum_entries)].sum(-1)
           + t["cases_weighted"][:, list(src.cases)].sum(-1))
    for k, node, a, b in src.expert:
        x = params["theta"][:, k, node]
        lr = lr + beta_lpdf(x, a, b) - beta_lpdf(x, d.prior_a[k, node], d.prior_b[k, node])
    return lr


def _patient_log_odds(patient: F.Patient, draws: Draws, pretest: float | None = None) -> np.ndarray:
    from model.answer import answer

    return answer(patient, draws, pretest=pretest, leave_out=False).posterior_log_odds


def _own_case_ratio(patient: F.Patient, draws: Draws) -> np.ndarray:
    idx = draws.case_index(patient.id)
    return np.zeros(draws.n) if idx is None else -draws.case_loglik[idx]


def _mean_p(log_odds: np.ndarray, w: np.ndarray | None = None) -> float:
    p = 1 / (1 + np.exp(-log_odds))
    return float(np.average(p, weights=w))


def _weighted(log_odds: np.ndarray, log_ratio: np.ndarray) -> tuple[float, float]:
    """Mean P(L) under PSIS weights for ``log_ratio`` and k-hat (0 when the ratio is constant: exact)."""
    if np.ptp(log_ratio) < 1e-12:
        return _mean_p(log_odds), 0.0
    w, k = psis_weights(log_ratio)
    return _mean_p(log_odds, w), (k if np.isfinite(k) else 99.0)


def _draws_from(dt, d: D.Design, like: Draws) -> Draws:
    from model.fit import flat_params

    params = flat_params(dt)
    ll = np.asarray(LK.case_loglik(LK.NUMPY, params, d)).T
    meta = dict(like.meta)
    meta["settings"] = {**meta["settings"], "chains": int(dt["posterior"].dataset.sizes["chain"])}
    return Draws(params, meta, d.w_case * ll)


def draws_from_fit(dt, d: D.Design, evidence: Evidence, settings) -> Draws:
    """:class:`Draws` (with the metadata :func:`model.answer.answer` reads) from a ``fit.sample`` result."""
    from model import __version__
    from model.fit import diagnostics, flat_params

    params = flat_params(dt)
    ll = np.asarray(LK.case_loglik(LK.NUMPY, params, d)).T
    meta = {"variant": d.variant.name, "components": list(d.variant.components), "evidence_hash": evidence.hash,
            "version": __version__, "settings": dataclasses.asdict(settings), "w_case": d.w_case,
            "case_ids": list(d.case_ids), "case_aliases": [list(c.also_known_as) for c in evidence.cases],
            "diagnostics": diagnostics(dt)}
    return Draws(params, meta, d.w_case * ll)


def answer_sensitivity(evidence: Evidence, variant: str, draws: Draws, patients: Sequence[F.Patient], *,
                       w_values: Sequence[float] = (0.25, 0.5, 1.0),
                       pretests: Sequence[float] = (0.01, 0.05, 0.2, 0.5),
                       refit: bool = True, refit_settings=None, k_threshold: float = 0.7,
                       top: int = 8) -> dict[str, Any]:
    """How each patient's P(L | findings) (mean) moves with ``w_case``, the base rate and each source.

    Parameters
    ----------
    draws : Draws
        The fitted posterior of ``variant`` on ``evidence`` (the baseline answers).
    refit : bool
        Refit (reusing the compiled model, reduced ``refit_settings``) for each ``w_case`` and for
        each source whose PSIS removal is unreliable (k-hat >= ``k_threshold``). If False, every
        change is by PSIS and unreliable ones are reported as such.
    top : int
        Sources kept per patient in the tornado (largest |change| first).

    Returns
    -------
    dict
        ``patients``: per patient id its ``baseline`` mean probability, ``w_case`` rows, ``pretest``
        rows, and ``sources`` rows (``delta`` = without the source minus with it, ``method`` PSIS or
        refit, ``pareto_k``, ``reliable``) sorted by |delta|, ``tornado`` (the ``top`` of them);
        ``settings``: how the refits were run.
    """
    from model import cache as C
    from model import variants

    rs = refit_settings or C.Settings(draws=500, tune=500, chains=2)
    v = variants.get(variant, evidence.forms)
    d = D.build(evidence, v)
    if len(d.case_ids) != draws.case_loglik.shape[0]:
        raise ValueError("draws do not match the evidence's case library")
    terms = loglik_terms(draws.params, d)
    srcs = sources(evidence, d)
    base_lo = {p.id: _patient_log_odds(p, draws) for p in patients}
    own = {p.id: _own_case_ratio(p, draws) for p in patients}
    res: dict[str, Any] = {p.id: {"description": p.description, "w_case": [], "pretest": [], "sources": []}
                           for p in patients}
    for p in patients:
        res[p.id]["baseline"] = _weighted(base_lo[p.id], own[p.id])[0]
        res[p.id]["base_rate"] = _mean_p(LK.strata(LK.NUMPY, draws.params)[2])
        for pt in pretests:
            lo = _patient_log_odds(p, draws, pretest=pt)
            res[p.id]["pretest"].append({"pretest": pt, "mean": _weighted(lo, own[p.id])[0]})

    refits: dict[str, Draws] = {}

    def do_refit(key: str, data: dict[str, np.ndarray] | None, dd: D.Design) -> Draws:
        from model import fit

        if key not in refits:
            dt, _ = fit.sample(variant, evidence, rs, data=data)
            refits[key] = _draws_from(dt, dd, draws)
        return refits[key]

    base_data = d.data()
    # w_case: refits (or PSIS: log ratio (w' - w) x l_i over every case)
    for w in w_values:
        dw = dataclasses.replace(d, w_case=float(w))
        for p in patients:
            if refit:
                ref = do_refit("base", None, d)
                alt = do_refit(f"w={w}", {"case_w": np.full(len(d.case_ids), float(w))}, dw)
                i = alt.case_index(p.id)
                own_alt = np.zeros(alt.n) if i is None else -alt.case_loglik[i]
                own_ref = _own_case_ratio(p, ref)
                mean = _weighted(_patient_log_odds(p, alt), own_alt)[0]
                delta = mean - _weighted(_patient_log_odds(p, ref), own_ref)[0]
                res[p.id]["w_case"].append({"w_case": w, "mean": res[p.id]["baseline"] + delta, "delta": delta,
                                            "method": "refit", "pareto_k": None, "reliable": True})
            else:
                lr = (w - d.w_case) * terms["cases"].sum(-1) + own[p.id] * (w / d.w_case)
                mean, k = _weighted(base_lo[p.id], lr)
                res[p.id]["w_case"].append({"w_case": w, "mean": mean, "delta": mean - res[p.id]["baseline"],
                                            "method": "PSIS", "pareto_k": k, "reliable": bool(k < k_threshold)})
    # sources
    for src in srcs:
        lr_src = source_log_ratio(src, draws.params, d, terms)
        for p in patients:
            idx = draws.case_index(p.id)
            own_lr = own[p.id] if idx is None or idx not in src.cases else 0.0
            mean, k = _weighted(base_lo[p.id], lr_src + own_lr)
            row = {"source": src.name, "kind": src.kind, "mean": mean, "delta": mean - res[p.id]["baseline"],
                   "method": "PSIS", "pareto_k": k, "reliable": bool(k < k_threshold),
                   "entries": len(src.entries) + len(src.stratum_entries), "cases": len(src.cases)}
            if not row["reliable"] and refit and src.kind == "reference":
                data = {k2: v2.copy() for k2, v2 in base_data.items()}
                data["entry_w"][list(src.entries)] = 0.0
                data["sentry_w"][list(src.stratum_entries)] = 0.0
                data["case_w"][list(src.cases)] = 0.0
                dd = dataclasses.replace(d, entry_w=data["entry_w"], sentry_w=data["sentry_w"])
                ref = do_refit("base", None, d)
                alt = do_refit(f"source={src.name}", data, dd)
                own_alt = np.zeros(alt.n) if idx is None or idx in src.cases else -alt.case_loglik[idx]
                delta = (_weighted(_patient_log_odds(p, alt), own_alt)[0]
                         - _weighted(_patient_log_odds(p, ref), _own_case_ratio(p, ref))[0])
                row.update({"delta": delta, "mean": res[p.id]["baseline"] + delta, "method": "refit",
                            "reliable": True})
            res[p.id]["sources"].append(row)
    for p in patients:
        rows = sorted(res[p.id]["sources"], key=lambda r: -abs(r["delta"]) if r["reliable"] else 0.0)
        res[p.id]["sources"] = rows
        res[p.id]["tornado"] = [r for r in rows if r["reliable"]][:top]
    return {"variant": variant, "patients": res, "refit": refit,
            "settings": dataclasses.asdict(rs) if refit else None, "refits": len(refits),
            "k_threshold": k_threshold}


# --- MCMC diagnostics per scalar (for tables and rank plots) -----------------------------------------

def scalar_table(draws: Draws, d: D.Design, prior: dict[str, np.ndarray] | None = None,
                 chains: int | None = None, ci: float = CI) -> list[dict[str, Any]]:
    """Per scalar parameter: posterior mean and interval, R-hat, bulk/tail ESS, and (if ``prior``
    draws are given) the prior mean and interval and the posterior/prior sd ratio."""
    import arviz as az
    import xarray as xr

    chains = chains or int(draws.meta["settings"]["chains"])
    ds = xr.Dataset({name: (("chain", "draw", *[f"{name}_dim_{i}" for i in range(arr.ndim - 1)]), _reshape(arr, chains))
                     for name, arr in draws.params.items()})
    rhat, ess_b, ess_t = az.rhat(ds, method="rank"), az.ess(ds, method="bulk"), az.ess(ds, method="tail")
    rows = []
    for name, arr in draws.params.items():
        for idx, label in _element_labels(name, arr.shape[1:], d):
            x = arr[(slice(None), *idx)]
            row = {"parameter": label, "name": name, "index": list(idx), "mean": float(x.mean()),
                   "lower": float(np.quantile(x, (1 - ci) / 2)), "upper": float(np.quantile(x, (1 + ci) / 2)),
                   "r_hat": float(np.asarray(rhat[name].values)[idx]),
                   "ess_bulk": float(np.asarray(ess_b[name].values)[idx]),
                   "ess_tail": float(np.asarray(ess_t[name].values)[idx])}
            if prior is not None:
                xp = prior[name][(slice(None), *idx)]
                row.update({"prior_mean": float(xp.mean()), "prior_lower": float(np.quantile(xp, (1 - ci) / 2)),
                            "prior_upper": float(np.quantile(xp, (1 + ci) / 2)),
                            "sd_ratio": float(x.std() / xp.std()) if xp.std() > 0 else float("nan")})
            rows.append(row)
    return rows


def element(params: dict[str, np.ndarray], name: str, index: Sequence[int]) -> np.ndarray:
    """Draws of one scalar element of a parameter."""
    return params[name][(slice(None), *index)]


# --- everything the statistician's report shows ------------------------------------------------------

def run_all(evidence: Evidence, posteriors: dict[str, Draws], patients: Sequence[F.Patient], *,
            sensitivity_variant: str | None = None, refit: bool = True, refit_settings=None,
            prior_n: int = 4000, seed: int = 1) -> dict[str, Any]:
    """Every number of the statistician's report (DESIGN §6).

    Parameters
    ----------
    posteriors : dict
        Variant name -> fitted posterior draws on ``evidence``.
    sensitivity_variant : str, optional
        The variant whose answers are tested for sensitivity (default: the first given).
    refit : bool
        Refit for ``w_case`` and unreliable source removals (else PSIS only).

    Returns
    -------
    dict
        JSON-ready results per variant (``diagnostics``, ``scalars`` with prior and posterior summaries,
        ``ppc_posterior``, ``ppc_prior`` (prior-only), ``cohorts``, ``psense``), ``loo`` and
        ``sensitivity``; plus ``_arrays`` (not JSON: draws for figures).
    """
    from model import variants

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {"evidence_hash": evidence.hash, "variants": {}, "_arrays": {}}
    fits = {}
    for name, dr in posteriors.items():
        d = D.build(evidence, variants.get(name, evidence.forms))
        fits[name] = (dr, d)
        prior = prior_draws(d, prior_n, rng)
        out["variants"][name] = {
            "draws": dr.n, "chains": int(dr.meta["settings"]["chains"]), "settings": dr.meta["settings"],
            "diagnostics": dr.meta.get("diagnostics"),
            "scalars": scalar_table(dr, d, prior),
            "ppc_posterior": predictive_checks(dr.params, d, evidence, seed=seed),
            "ppc_prior": predictive_checks(prior, d, evidence, seed=seed),
            "cohorts": cohort_checks(dr.params, d, seed=seed),
            "psense": psense(dr, d),
        }
        out["_arrays"][name] = {"posterior": dr.params, "prior": prior, "chains": int(dr.meta["settings"]["chains"]),
                                "design": d}
    out["loo"] = compare_variants(fits) if len(fits) > 1 else None
    sv = sensitivity_variant or next(iter(posteriors))
    out["sensitivity"] = answer_sensitivity(evidence, sv, posteriors[sv], patients, refit=refit,
                                            refit_settings=refit_settings) if patients else None
    return out


def to_json(results: dict[str, Any]) -> str:
    """The results without the private arrays, as JSON (non-finite numbers as null)."""
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {str(k): clean(v) for k, v in x.items() if not str(k).startswith("_")}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (float, np.floating)):
            return float(x) if np.isfinite(x) else None
        if isinstance(x, (np.integer,)):
            return int(x)
        if isinstance(x, (np.bool_,)):
            return bool(x)
        return x

    import json

    return json.dumps(clean(results), indent=1)
