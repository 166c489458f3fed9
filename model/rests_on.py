"""What an answer rests on (issue 19 item 1): the posterior variance of its log odds of infiltration split
into blocks of where its uncertainty comes from, each block split into data and expert judgment.

The quantity
------------
For one patient, L_s = log odds of infiltration against the other weighed causes on posterior draw s
(the answer's own value function, :class:`palsy.model.game.Game`, on every finding known). The answer
reports its mean; Var(L) over the draws is how uncertain it is. The same is done for P = expit(L).

The blocks
----------
L depends on the draws through these blocks of parameters:

- ``rate: <cause>``, one per cause: that cause's free rate factors and multipliers (``rates.yaml``);
- ``patient-time shares``: every context finding's share (the strata's weights);
- ``finding frequencies: <cause>``, one per cause: the cause's own node parameters (theta's component
  and infiltration-only nodes; for infiltration, with its forms' weights omega);
- ``laboratory``: the nodes shared by every cause (what each LP method sees, its artefacts,
  contamination, how often a tap is traumatic; the CSF profile after a positive LP);
- ``new-setting spread``: the random-effects predictive, theta_new against theta (delta = logit
  theta_new - logit theta, the new study's effect tau z_new);
- ``selection of published cases`` (gamma): L does not read gamma, but gamma is correlated a
  posteriori with infiltration's frequencies, which the case library informs through it (below);
- ``Monte Carlo error``: the squared Monte Carlo standard error of the answer's mean, MCSE^2 =
  Var(L) / ESS, added to the variance (so the shares sum to 1 over the uncertainty of the reported
  number, not only over the posterior's).

The method: Shapley effects by pick-freeze
------------------------------------------
The share of block b is its Shapley effect (Owen 2014; Song, Nelson and Staum 2016) for the variance of
L, divided by the total: the average over orders of the blocks of how much the block adds to the
explained variance when it joins those before it. Shapley effects are the one allocation that is
symmetric, gives nothing to a block L does not depend on, and sums *exactly* to the variance
(efficiency), whatever the interactions between blocks (e.g. the log-sum-exp over the mimics makes
their rates interact). They are computed with the cost function c(S) = E[Var(L | blocks not in S)],
estimated by pick-freeze (Jansen 1999): pair every draw A = s with an independent draw B (a random
permutation of the draws, or resampled by the answer's PSIS weights), evaluate L on the hybrid that takes
the blocks in S from B and the rest from A, and c(S) = 1/2 E[(L(A) - L(A with S from B))^2]; c(all) is
then the variance of L estimated from the pairs, and the Shapley effects of the blocks sum to it
exactly (telescoping). Each hybrid is assembled from per-component pieces precomputed once per
combination of sources (rate part per stratum compatible with the patient's context; tree, LP and
profile part per theta), so a hybrid costs one gather and two log-sum-exps over the draws. Up to
:data:`EXACT_BLOCKS` active blocks every order is enumerated (exact Shapley); above, antithetic pairs of
random orders are averaged (each order telescopes to c(all), so the sum stays exact), and the spread
over orders and the pairs' delta method give each share's own Monte Carlo error (pairs that share a draw
counted as correlated: :func:`share_errors`). The decomposition uses a
seeded subset of :data:`DRAWS` draws (fewer when the patient's context leaves many strata open); its
error is in each share's.

Pick-freeze assumes the blocks independent. The rate block is independent of theta *by construction*
(drawn exactly from its prior, no likelihood informs it), its factors are independent of each other and
of the shares, and the new-setting draw is independent of everything; the posterior blocks (each
cause's frequencies, the laboratory) are informed by different entries and are treated as independent
(their posterior correlation, e.g. infiltration's detectable cells against what flow sees, is reported
by :func:`decompose` as ``independence``: with one block from another draw, how far the answer's mean
and variance move, which is Monte Carlo noise alone when the blocks are independent). The selection
term is the exception: L does not depend on gamma at all, only on infiltration's
frequencies, with which gamma is correlated. For two dependent inputs where the output depends on one
only, the Shapley effect of the other is exactly half the variance it explains (Owen and Prieur 2017):
1/2 Var(E[g | gamma]), with g the first-order effect of infiltration's frequencies (a quadratic
regression on gamma); that amount is moved from infiltration's frequencies to selection.

Data against judgment
---------------------
Each block's share is split by where its information comes from (:func:`provenance`, from the evidence
at fit time): a rate factor or share by its ``kind`` in ``rates.yaml`` (``expert_judgment`` is judgment,
a cited estimate is data); a free node parameter by its prior's pseudo-counts a + b (an expert judgment's
Beta or the base prior, both judgment) against the weighted counts and case reports that inform it
(w n of its cohort entries, w_case per case observation): the share a Beta posterior's mean takes from
the data (Morita, Thall and Müller 2008's prior effective sample size); the forms' weights, the spread
and selection by their posterior contraction 1 - Var_post / Var_prior (the share of the prior's variance
the data removed). Within a block the parameters are weighted by how much of L's variance each explains
alone (Cov(L, x)^2 / Var(x), x on the logit or log scale).

Cost: about 0.1 s of CPU per answer (measured in ``docs/heavy_checks.md``), against about 0.7 s for the
answer itself. The module imports only numpy: the Game, its tables and the draws are passed in (the
Game's class is taken from the instance; :func:`provenance` and :func:`variant_probability` import palsy's
own modules inside the function, the first on the fit's side only).
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import numpy as np

from palsy.model.rates import factor_entry, factor_levels

INFILTRATION = "infiltration"
EXACT_BLOCKS = 6  # up to this many active blocks, every order is enumerated (2^6 hybrids)
PAIRS = 8  # antithetic pairs of random orders above it
#: Bootstrap resamples of the selection term's regression (its Monte Carlo error).
SELECTION_BOOTSTRAP = 40
#: The row of the answer's own Monte Carlo error: the error of its mean log odds over every draw, not the
#: error of the table's shares (each row carries its own, ``mc_error``).
MONTE_CARLO = "Monte Carlo error of the answer's mean"
DRAWS = 500  # draws the decomposition uses (a seeded subset: its Monte Carlo error is in each share's)
MAX_CELLS = 2_000_000  # draws x compatible strata x components per rate combination: fewer draws above it
ACTIVE = 1e-3  # a block whose total effect is below this share of the variance is left out of the orders
KINDS = ("judgment", "data")


def _lse(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _logit(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x) - np.log1p(-x)


def _expit(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-x))


# --- the Shapley engine -----------------------------------------------------------------------------

def shapley_effects(hybrid, n_blocks: int, *, weights: np.ndarray | None = None, rng: np.random.Generator | None = None,
                    exact_blocks: int = EXACT_BLOCKS, pairs: int = PAIRS, active_share: float = ACTIVE,
                    draw_ids: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Shapley effects of ``n_blocks`` independent blocks for the variance of an output, by pick-freeze.

    Parameters
    ----------
    hybrid : callable
        ``hybrid(from_b)`` with ``from_b`` a bool array (h, n_blocks): the output per hybrid and draw
        (h, n) when the blocks marked True take draw B's values and the others draw A's (a row all
        False: the output itself).
    weights : ndarray, optional
        Weights of the draws A (normalised here); default equal.
    active_share : float
        A block whose total effect is below this share of the variance is left out of the orders.
    draw_ids : (ndarray, ndarray), optional
        The draw behind A and behind B of each pair (:func:`share_errors`): pairs that share a draw are
        not independent. Without it every pair is taken as independent of the others.

    Returns
    -------
    dict
        ``effects`` (n_blocks,) summing exactly to ``total`` = c(all) = 1/2 E[(f(A) - f(B))^2], the
        variance of the output estimated from the pairs; ``mc_error`` (n_blocks,) the standard error of
        each effect over the random orders (0 when exact); ``method``; ``hybrids`` evaluated; ``active``:
        the blocks whose total effect c({b}) = E[Var(f | the other blocks)] is above ``active_share``
        of the total (for independent blocks a Shapley effect is at most the total effect; the others
        are always taken from B and share the negligible remainder); ``f_a``, ``weights``; ``terms``
        (n_blocks, n) and ``order_error`` (n_blocks,), from which :func:`share_errors` gives ``mc_error``;
        ``total_terms`` (n,), the pairs' terms of ``total``.
    """
    rng = rng or np.random.default_rng(0)
    f_a = hybrid(np.zeros((1, n_blocks), bool))[0]
    n = len(f_a)
    w = np.full(n, 1.0 / n) if weights is None else np.asarray(weights, float) / np.sum(weights)
    cache: dict[bytes, np.ndarray] = {}
    zero = np.zeros(n)

    def costs(subsets: np.ndarray) -> np.ndarray:
        """Per draw, w_i/2 (f(A)_i - f(hybrid S)_i)^2 for each row S of ``subsets`` (summing over the
        draws gives c(S); c(empty) = 0 exactly), evaluated in batches."""
        subsets = np.asarray(subsets, bool).reshape(-1, n_blocks)
        todo = [s for s in {r.tobytes(): r for r in subsets}.values() if s.tobytes() not in cache and s.any()]
        for start in range(0, len(todo), 32):
            batch = np.array(todo[start:start + 32])
            f = hybrid(batch)
            for s, c in zip(batch, 0.5 * w * (f - f_a) ** 2, strict=True):
                cache[s.tobytes()] = c
        return np.array([cache.get(r.tobytes(), zero) for r in subsets])

    eye = np.eye(n_blocks, dtype=bool)
    per = costs(np.vstack([np.ones((1, n_blocks), bool), eye]))
    total, singles = float(per[0].sum()), per[1:].sum(axis=1)
    active = [b for b in range(n_blocks) if total > 0 and singles[b] > active_share * total]
    outside = ~np.isin(np.arange(n_blocks), active)
    contrib = np.zeros((n_blocks, n))  # each effect's per-draw terms (they sum to the effect)
    order_err = np.zeros(n_blocks)
    g = len(active)
    if g <= exact_blocks:
        act = np.array(active, int)
        bits = (np.arange(2 ** g)[:, None] >> np.arange(g)[None, :]) & 1  # (2^g, g)
        subs = np.repeat(outside[None, :], 2 ** g, axis=0)
        subs[:, act] |= bits.astype(bool)
        c = costs(subs)
        for i, b in enumerate(active):
            for code in range(2 ** g):
                if code >> i & 1:
                    continue
                r = bin(code).count("1")
                weight = math.factorial(r) * math.factorial(g - r - 1) / math.factorial(g)
                contrib[b] += weight * (c[code | 1 << i] - c[code])
        method = f"exact over {g} active blocks"
    else:
        orders = []
        for _ in range(pairs):
            order = list(rng.permutation(active))
            orders += [order, order[::-1]]
        chains = np.repeat(outside[None, None, :], len(orders), axis=0).repeat(g + 1, axis=1)
        for i, o in enumerate(orders):
            for j in range(1, g + 1):
                chains[i, j:, o[j - 1]] = True
        c = costs(chains.reshape(-1, n_blocks)).reshape(len(orders), g + 1, n)
        samples = np.zeros((len(orders), n_blocks, n))
        for i, o in enumerate(orders):
            samples[i, o] = np.diff(c[i], axis=0)
        contrib = samples.mean(axis=0)
        # the two orders of a pair are antithetic: the pair means are the independent samples
        pair_means = samples.sum(axis=2).reshape(pairs, 2, n_blocks).mean(axis=1)
        order_err = pair_means.std(axis=0, ddof=1) / math.sqrt(pairs)
        method = f"{pairs} antithetic pairs of random orders over {g} active blocks"
    # what the left-out blocks leave (c(outside), negligible) makes the sum exact: shared among them
    rest = per[0] - contrib.sum(axis=0)
    left = [b for b in range(n_blocks) if b not in active] or active
    contrib[left] += rest / len(left)
    effects = contrib.sum(axis=1)
    # per pair, w_i (x_bi - share_b x_i) / total: each share's linearisation (the delta method, the
    # error of the total included; its terms sum to 0)
    terms = (contrib - (effects / total)[:, None] * per[0][None, :]) / total if total > 0 else np.zeros_like(contrib)
    share_err = share_errors(terms, order_err / total if total > 0 else order_err, draw_ids)
    return {"effects": effects, "total": total, "mc_error": share_err * total, "method": method,
            "hybrids": len(cache), "active": active, "f_a": f_a, "weights": w, "terms": terms,
            "order_error": order_err / total if total > 0 else order_err, "total_terms": per[0]}


def share_errors(terms: np.ndarray, order_error: np.ndarray,
                 draw_ids: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The Monte Carlo standard error of each share from its per-pair linearised terms.

    Pair i reads draw ``draw_ids[0][i]`` (A) and draw ``draw_ids[1][i]`` (B). Every draw is A in one pair
    and, with B a permutation of the draws, B in another, so neighbouring pairs are correlated: the
    variance of the sum is that of the draws' own sums, sum over draws d of (sum of the terms of the
    pairs reading d)^2, with each pair's own square counted once (the covariance estimator of a
    dependency graph; pairs that share no draw are independent). Taking the pairs as independent, and
    the share :func:`decompose` moves to selection as exact, gave errors up to 1.9 times smaller than the
    spread over seeds (``docs/heavy_checks.md``). The random orders' error adds in quadrature.

    Parameters
    ----------
    terms : ndarray
        (n_blocks, n): per pair, each share's linearised term (summing to 0 over the pairs).
    order_error : ndarray
        (n_blocks,): the standard error of each share over the random orders (0 when exact).
    draw_ids : (ndarray, ndarray), optional
        The draw behind A and behind B of each pair; without it the pairs are taken as independent.

    Returns
    -------
    ndarray
        (n_blocks,) standard errors.
    """
    terms = np.asarray(terms, float)
    if draw_ids is None:
        var = np.sum(terms ** 2, axis=1)
    else:
        n = terms.shape[1]
        _, inverse = np.unique(np.concatenate([np.asarray(draw_ids[0]), np.asarray(draw_ids[1])]),
                               return_inverse=True)
        on_a, on_b = inverse[:n], inverse[n:]
        two = on_a != on_b  # a pair whose B is its own A reads one draw
        per_draw = np.zeros((terms.shape[0], int(inverse.max()) + 1))
        np.add.at(per_draw.T, on_a, terms.T)
        np.add.at(per_draw.T, on_b[two], terms.T[two])
        var = np.sum(per_draw ** 2, axis=1) - np.sum(terms[:, two] ** 2, axis=1)
    return np.sqrt(np.maximum(var, 0.0) + np.asarray(order_error, float) ** 2)


# --- provenance (at fit time, from the evidence) --------------------------------------------------

def _source_kind(block: Any) -> str | None:
    if isinstance(block, dict):
        if block.get("kind") == "expert_judgment":
            return "judgment"
        if block.get("kind") is not None or block.get("ref"):
            return "data"
    return None


def rate_factor(doc: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rate factor's entry in ``rates.yaml``'s ``rates`` (``doc``) by its name in the draws ('infiltration:
    relapse_hazard', 'zoster: recent_hsct=yes', 'vincristine: lineage=AML & recent_vincristine=no'), with its
    cause's block (its kind when the factor has none): :func:`palsy.model.rates.factor_entry`."""
    return factor_entry(doc, name)


def rate_factor_is_judgment(doc: dict[str, Any], name: str) -> bool:
    """Whether a rate factor is expert judgment (its kind, else its block's; a cited estimate is data): the one rule
    the fit's provenance and the report's reasoning share."""
    factor, block = rate_factor(doc, name)
    return (_source_kind(factor if isinstance(factor, dict) else None) or _source_kind(block)) != "data"


def provenance(evidence, design) -> dict[str, Any]:
    """Where each parameter's information comes from, JSON-ready (for the fit's metadata: the answer
    reads no YAML).

    Parameters
    ----------
    evidence : palsy.model.evidence.Evidence
    design : palsy.model.design.Design
        The variant's design (its free node parameters, priors, entries and cases).

    Returns
    -------
    dict
        ``rate_factors``: per free rate factor (lognormal then beta, the draws' column order) its cause
        and judgment share (1 for ``kind: expert_judgment``, 0 for a cited estimate); ``shares``: per
        context finding the judgment share of its cells; ``free``: per free node parameter its name,
        prior pseudo-counts a + b, weighted data count and judgment share prior / (prior + data);
        ``omega_alpha``, ``tau_sigma``, ``gamma_sigma`` for the contractions.
    """
    rates = evidence.rates
    doc = rates.doc.get("rates") or {}

    def factor_kind(name: str) -> float:
        return 1.0 if rate_factor_is_judgment(doc, name) else 0.0

    r = design.rates
    factors = [{"name": n, "cause": factor_levels(n)[0], "family": fam, "judgment": factor_kind(n)}
               for fam, names in (("lognormal", r.lognormal_names), ("beta", r.beta_names)) for n in names]

    def cells(node: Any, inherited: str | None) -> list[str]:
        kind = _source_kind(node) or inherited
        if not isinstance(node, dict):
            return [kind or "judgment"]
        subs = [v for k, v in node.items() if isinstance(v, dict) and k not in ("counts", "mean", "lognormal", "beta")
                and not {"a", "b"} >= set(v)]
        if not subs or any(k in node for k in ("counts", "mean", "a")):
            return [kind or "judgment"]
        return [x for v in subs for x in cells(v, kind)]

    share_doc = rates.doc.get("shares") or {}
    shares = {}
    for f in r.context:
        kinds = cells(share_doc.get(f), None)
        shares[f] = {"judgment": float(np.mean([k == "judgment" for k in kinds]))}

    st = design.structure
    v = design.variant
    free = st.free_parameters(v.components, v.infiltration_components)
    index = {f: i for i, f in enumerate(free)}
    data_n = np.zeros(len(free))
    by_id = {e.id: e for e in evidence.entries}
    from palsy.model import design as D  # the fit's side only (never on the answer's path)

    for j, eid in enumerate(design.entry_ids):
        e = by_id.get(eid)
        if e is None:
            continue
        try:
            targets = [index[t] for t in D.judgment_targets(e, st, v) if t in index]
        except (KeyError, TypeError, ValueError):
            targets = []
        for i in targets:
            data_n[i] += design.entry_w[j] * design.entry_n[j] / len(targets)
    inf = list(v.infiltration_components)
    per_case = design.obs_case * design.w_case  # (case, obs)
    for o, mask in enumerate(design.obs_mask):
        keys = [st.level_keys[x] for x in np.flatnonzero(mask)]
        item, levels = keys[0][0], tuple(lv for _, lv in keys)
        path = st.group_path(item, levels) or []
        for c in np.flatnonzero(per_case[:, o]):
            forms = design.case_forms[c] if len(design.case_forms[c]) == len(inf) else np.ones(len(inf))
            share = forms / forms.sum()
            for node, _ in path:
                for pos, k in enumerate(inf):
                    key = (None, node) if st.nodes[node].sharing == "shared" else (k, node)
                    if key in index:
                        data_n[index[key]] += per_case[c, o] * share[pos]
    prior_n = design.prior_a + design.prior_b
    judged_by = D.judgments(evidence, st, v)  # the judgment that sets each free parameter's prior, where one does
    return {
        "rate_factors": factors, "shares": shares,
        "free": {"names": list(design.free_names), "prior_n": prior_n.tolist(), "data_n": data_n.tolist(),
                 "judgment": (prior_n / (prior_n + data_n)).tolist(),
                 "entry": [judged_by[t].id if t in judged_by else None for t in free],
                 "sharing": [st.nodes[j].sharing for _, j in free],
                 "component": [None if k is None else v.components[k] for k, _ in free]},
        "omega_alpha": design.form_alpha.tolist(), "tau_sigma": float(design.tau_sigma),
        "gamma_sigma": float(design.gamma_sigma),
    }


# --- the answer's pieces ----------------------------------------------------------------------------

class _RatePart:
    """The rate part of one patient's per-component log joint, log sum over the strata compatible with its
    known context of pi_s lambda_c,s omega_l(s),k, split by whether blasts circulate (n, K, 2): only those
    strata, so a change of the rate block costs draws x causes x compatible strata."""

    def __init__(self, t, ctx: dict[str, str | None], K: int) -> None:
        st, sc = t.st, t.schema
        self.r = r = t.draws.rate_arrays
        mask = st.stratum_mask(ctx)
        self.M = M = np.flatnonzero(mask > 0)
        finding, level = sc.lp.contamination
        blasts = st.stratum_mask({finding: level})[M]
        self.groups = [np.flatnonzero(blasts == 0), np.flatnonzero(blasts == 1)]
        self.levels = np.array(np.unravel_index(M, tuple(int(x) for x in r.strata_shape))).T  # (|M|, axis)
        C, N = r.n_causes, int(np.prod(r.strata_shape))
        self.cols = (np.arange(C)[:, None] * N + M[None, :]).ravel()
        self.component_cause = np.asarray(t.component_cause)
        self.K = K
        self.forms = (np.flatnonzero(r.component_form.sum(axis=1) > 0) if r.component_form.shape[1]
                      else np.zeros(0, int))
        self.plain = np.setdiff1d(np.arange(K), self.forms)

    def logs(self, p: dict[str, np.ndarray], rows: np.ndarray | None = None):
        """log pi (n, |M|), log lambda (n, C, |M|), log omega (n, K, |M|) of the draws ``rows``."""
        r, M, levels = self.r, self.M, self.levels
        rows = np.arange(len(p["rate_lognormal"])) if rows is None else rows
        log_pi = np.zeros((len(rows), len(M)))
        for f in r.context:
            axes = [int(a) for a in r.share_axes[f]]
            log_pi += np.log(p[f"share_{f}"][(rows[:, None], *[levels[None, :, a] for a in axes])])
        log_lam = np.broadcast_to(r.fixed_log[self.cols], (len(rows), len(self.cols))).copy()
        if r.lognormal_incidence.shape[0]:
            log_lam += np.log(p["rate_lognormal"][rows]) @ r.lognormal_incidence[:, self.cols]
        if r.beta_incidence.shape[0]:
            log_lam += np.log(p["rate_beta"][rows]) @ r.beta_incidence[:, self.cols]
        log_lam = log_lam.reshape(len(rows), r.n_causes, len(M))
        log_om = np.zeros((len(rows), self.K, len(M)))
        if "omega" in p and len(self.forms):
            lin = np.argmax(r.lineage_of_stratum[M], axis=1)  # (|M|,)
            om = np.log(p["omega"][rows])  # (n, lineage, form)
            for k in self.forms:
                log_om[:, k] = om[:, lin, np.flatnonzero(r.component_form[k])[0]]
        return log_pi, log_lam, log_om

    def combine(self, log_pi: np.ndarray, log_lam: np.ndarray, log_om: np.ndarray) -> np.ndarray:
        """U (n, K, 2) from the three pieces (each from any draws)."""
        def lse_blasts(x: np.ndarray) -> np.ndarray:  # (..., |M|) -> (..., 2)
            return np.stack([_lse(x[..., g], axis=-1) if len(g) else np.full(x.shape[:-1], -np.inf)
                             for g in self.groups], axis=-1)

        n = log_pi.shape[0]
        u = np.empty((n, self.K, 2))
        by_cause = lse_blasts(log_pi[:, None, :] + log_lam)  # (n, C, 2)
        u[:, self.plain] = by_cause[:, self.component_cause[self.plain]]
        if len(self.forms):
            u[:, self.forms] = lse_blasts(log_pi[:, None, :] + log_lam[:, self.component_cause[self.forms]]
                                          + log_om[:, self.forms])
        return u


class Evaluator:
    """One patient's full-findings log odds of infiltration per draw as a function of the rate block, the
    rest (theta, the findings but the context) fixed at the draws': a rate factor moved to an alternative
    costs draws x causes x the strata compatible with the patient's context (no new tables).

    ``log_odds(params)`` with ``params`` the draws' own is the answer's ``Game.value`` on every finding."""

    def __init__(self, game) -> None:
        n = game.t.n
        idx = np.arange(n)
        self.pieces = _Pieces(game, idx, idx, thetas=((False, False, False),))
        self.T = self.pieces.T[(False, False, False)]

    def log_odds(self, params: dict[str, np.ndarray]) -> np.ndarray:
        pc = self.pieces
        u = pc.rates.combine(*pc.rates.logs(params))
        with np.errstate(invalid="ignore"):
            a = np.logaddexp(u[..., 0] + self.T[..., 0], u[..., 1] + self.T[..., 1])  # (n, K)
        cc = pc.component_cause
        lj = np.stack([a[:, cc == j][:, 0] if np.sum(cc == j) == 1 else _lse(a[:, cc == j], axis=1)
                       for j in range(len(pc.causes))], axis=1)
        others = np.flatnonzero(pc.active & (np.arange(len(pc.active)) != pc.inf))
        return lj[:, pc.inf] - _lse(lj[:, others], axis=1)


class _Pieces:
    """Per-draw pieces of one patient's full-findings log odds, per source of each block (draw A or its
    partner B), from which any hybrid is a gather."""

    def __init__(self, game, partner: np.ndarray, sel: np.ndarray,
                 thetas: tuple[tuple[bool, bool, bool], ...] | None = None) -> None:
        t = game.t
        self.game, self.t = game, t
        draws = t.draws
        p = draws.params
        st, sc = t.st, t.schema
        self.sel = sel  # the draws used (A), and their partners B
        self.partner = partner
        self.causes = list(t.causes)
        self.component_cause = np.asarray(t.component_cause)
        K = len(self.component_cause)
        self.K = K
        self.active = np.asarray(game.active, bool)
        self.inf = self.causes.index(INFILTRATION)
        ctx = {name: game.patient.level(name) for name in sc.context}
        self.ctx = ctx
        # -- the rate part over the strata compatible with the known context, split by blasts
        both = np.concatenate([sel, partner])
        self.rates = _RatePart(t, ctx, K)
        self.M = self.rates.M
        n = len(sel)
        self.U = {}
        if thetas is None:  # the hybrids' rate parts (the Evaluator computes its own)
            log_pi, log_lam, log_om = self.rates.logs(p, both)
            half = {False: slice(0, n), True: slice(n, 2 * n)}
            # U[(pi, rate, omega)] (n, K, 2): log sum over the compatible strata with blasts absent / present
            self.U = {src: self.rates.combine(log_pi[half[src[0]]], log_lam[half[src[1]]], log_om[half[src[2]]])
                      for src in itertools.product((False, True), repeat=3)}
        # -- the rest (tree findings, LPs, profile) per theta source: own nodes, shared nodes, delta
        theta, theta_new = p["theta"], p.get("theta_new", p["theta"])
        moved = np.any(theta_new[both] != theta[both], axis=0)  # (K, node): where the new-setting predictive applies
        kk, nn = np.nonzero(moved)
        delta = np.zeros((len(theta), len(kk)))
        with np.errstate(invalid="ignore", divide="ignore"):
            delta[both] = _logit(theta_new[both][:, kk, nn]) - _logit(theta[both][:, kk, nn])  # (S, positions)
        shared = np.array([nd.sharing == "shared" for nd in st.nodes])
        plist = [pl for pl in game.players if pl.finding not in sc.context]
        # the nodes the findings read: a block of nodes none of them reads takes no part (its sources alike)
        read = np.zeros(len(st.nodes), bool)
        lp_nodes = np.arange(st.n_tree_nodes, len(st.nodes))
        for pl in plist:
            if pl.lp is not None or pl.finding == sc.profile:
                read[lp_nodes] = True
            items = ([st.profile_item(r) for r in st.results] if pl.finding == sc.profile else
                     [] if pl.lp is not None else [pl.finding])
            for item in items:
                j = st.level_index.get((item, pl.value))
                if j is not None:
                    read[:st.n_tree_nodes] |= (st.a_success[j] + st.a_failure[j]) > 0
        lab_read = bool((read & shared).any())
        delta_read = bool(read[nn].any()) if len(kk) else False
        self.T = {}
        th_ab = {False: theta[sel], True: theta[partner]}
        d_ab = {False: delta[sel], True: delta[partner]}
        wanted = set(thetas) if thetas is not None else set(itertools.product((False, True), repeat=3))
        for own, lab, dl in sorted(wanted):
            key = (own, lab and lab_read, dl and delta_read)  # the sources that matter
            if key in self.T:
                self.T[(own, lab, dl)] = self.T[key]
                continue
            own_, lab_, dl_ = key
            base = th_ab[own_] if own_ == lab_ else np.where(shared[None, None, :], th_ab[lab_], th_ab[own_])
            th = base.copy() if len(kk) else base
            if len(kk):
                with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                    th[:, kk, nn] = _expit(_logit(base[:, kk, nn]) + d_ab[dl_])
            self.T[key] = self._rest(th, plist)
            self.T[(own, lab, dl)] = self.T[key]

    def _rest(self, th: np.ndarray, plist: list) -> np.ndarray:
        """Log p(findings but the context | component, blasts absent / present) (n, K, 2) for theta ``th``,
        by the answer's own Game on tables that carry ``th`` and no context term (the blasts forced
        through the Game's ``extra`` term)."""
        t, game, st = self.t, self.game, self.t.st
        n = th.shape[0]
        stub = copy.copy(t)
        stub.n = n
        stub.theta = th
        stub.contamination = th[:, 0, t.ix.contamination]
        stub.traumatic_rate = th[:, 0, t.ix.traumatic]
        tree = th[..., :st.n_tree_nodes]

        def level(item: str, lv: str) -> np.ndarray:
            j = st.level_index[(item, lv)]
            s_, f_ = np.flatnonzero(st.a_success[j]), np.flatnonzero(st.a_failure[j])
            with np.errstate(divide="ignore"):
                return np.log(tree[..., s_]).sum(-1) + np.log1p(-tree[..., f_]).sum(-1)

        stub.level = level
        stub.contexts_by_blasts = lambda many: np.zeros((len(many), n, self.K, 2))
        stub.context_term = lambda values: np.zeros((n, self.K))
        g = type(game)(stub, plist, game.patient, game.active, np.zeros((n, len(self.causes))),
                       np.zeros((n, self.K)), known_context=self.ctx)
        mask = np.ones((1, len(plist)), bool)
        out = []
        for b in (0, 1):
            forced = np.full((n, self.K, 2), -np.inf)
            forced[..., b] = 0.0
            out.append(g.log_p_components(mask, forced)[0])
        return np.stack(out, axis=-1)


class _Hybrids:
    """The log odds of hybrids of A and B draws, per block (see the module docstring)."""

    def __init__(self, pieces: _Pieces, blocks: list[dict[str, Any]]) -> None:
        self.p = pieces
        self.blocks = blocks
        idx = {b["id"]: i for i, b in enumerate(blocks)}
        cc = pieces.component_cause
        causes = pieces.causes
        # per component: which block sets each source of its U (shares, its cause's rate, infiltration's
        # frequencies for omega) and T (its cause's frequencies, the laboratory, the new-setting spread)
        self.u_blocks = np.array([(idx["shares"], idx[f"rate:{causes[c]}"], idx[f"freq:{INFILTRATION}"]) for c in cc])
        self.t_blocks = np.array([(idx[f"freq:{causes[c]}"], idx["lab"], idx["delta"]) for c in cc])
        self.cause_components = [np.flatnonzero(cc == j) for j in range(len(causes))]
        # every component under every (U source, T source) combination: (8, 8, K, n)
        codes = list(itertools.product((False, True), repeat=3))
        u = np.stack([pieces.U[c] for c in codes]).transpose(0, 2, 1, 3)  # (8, K, n, 2)
        t = np.stack([pieces.T[c] for c in codes]).transpose(0, 2, 1, 3)
        x = u[:, None] + t[None, :]
        with np.errstate(invalid="ignore"):
            self.V = np.logaddexp(x[..., 0], x[..., 1])
        self.code = np.array([4, 2, 1])
        self.others = np.flatnonzero(pieces.active & (np.arange(len(pieces.active)) != pieces.inf))
        self.k = np.arange(pieces.K)
        self.cache: dict[bytes, np.ndarray] = {}

    def __call__(self, from_b: np.ndarray) -> np.ndarray:
        fb = np.asarray(from_b, bool).reshape(-1, len(self.blocks))
        todo = np.array([r for r in fb if r.tobytes() not in self.cache]).reshape(-1, len(self.blocks))
        if len(todo):
            ui = todo[:, self.u_blocks] @ self.code  # (h, K) combination codes
            ti = todo[:, self.t_blocks] @ self.code
            a = self.V[ui, ti, self.k[None, :]]  # (h, K, n)
            lj = np.stack([a[:, idx[0]] if len(idx) == 1 else _lse(a[:, idx], axis=1)
                           for idx in self.cause_components], axis=1)  # (h, C, n)
            out = lj[:, self.p.inf] - _lse(lj[:, self.others], axis=1)
            for r, o in zip(todo, out, strict=True):
                self.cache[r.tobytes()] = o
        return np.stack([self.cache[r.tobytes()] for r in fb])


def block_list(causes: list[str]) -> list[dict[str, Any]]:
    """The blocks an answer's uncertainty is split into, each with its ``id`` (``rate:<cause>``, ``shares``,
    ``freq:<cause>``, ``lab``, ``delta``) and the ``source`` its rows name."""
    out = [{"id": f"rate:{c}", "source": f"rate of {c}" if c != INFILTRATION else "base rate of infiltration"}
           for c in causes]
    out.append({"id": "shares", "source": "patient-time shares"})
    out += [{"id": f"freq:{c}", "source": f"finding frequencies: {c}" + (" (with its forms' weights)" if c == INFILTRATION else "")}
            for c in causes]
    out.append({"id": "lab", "source": "laboratory (LP methods, artefacts, contamination, taps)"})
    out.append({"id": "delta", "source": "new-setting spread (random effects)"})
    return out


# --- Monte Carlo error of the answer's mean ---------------------------------------------------------

def ess(x: np.ndarray, chains: int = 1) -> float:
    """Effective sample size of ``x`` (draws in chain order) by Geyer's initial positive sequence over
    the chains' averaged autocorrelations (numpy only)."""
    x = np.asarray(x, float)
    chains = max(1, int(chains))
    n = len(x) // chains
    if n < 4:
        return float(len(x))
    y = x[:n * chains].reshape(chains, n)
    y = y - y.mean(axis=1, keepdims=True)
    var = y.var(axis=1).mean() * n / (n - 1) if n > 1 else 0.0
    total_var = x[:n * chains].var(ddof=1)
    if total_var <= 0:
        return float(len(x))
    f = np.fft.rfft(y, 2 * n, axis=1)
    acov = np.fft.irfft(f * np.conj(f), axis=1)[:, :n].mean(axis=0) / n
    rho = 1.0 - (var - acov) / total_var
    rho[0] = 1.0
    s, t = 0.0, 0
    while t + 1 < n:
        pair = rho[t] + rho[t + 1]
        if pair < 0:
            break
        s += pair
        t += 2
    tau = max(-1.0 + 2.0 * s, 1.0 / math.log10(max(chains * n, 10)))
    return float(chains * n / tau)


# --- the decomposition -------------------------------------------------------------------------------

def _importance(target: np.ndarray, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """How much of ``target``'s variance each column of ``x`` explains alone (Cov^2 / Var), weighted."""
    x = np.where(np.isfinite(x), x, 0.0)
    xm = x - (w @ x)
    tm = target - w @ target
    cov = w @ (xm * tm[:, None])
    var = w @ (xm * xm)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(var > 1e-300, cov ** 2 / var, 0.0)


def rate_judgment(kinds: np.ndarray, prior_vars: np.ndarray, log_factors: np.ndarray, w: np.ndarray) -> float:
    """The judgment share of a cause's rate fitted with a registry: the judged factors' share of the prior
    variance of its log rate (``kinds``: 1 for an expert judgment, 0 for a cited estimate; ``prior_vars``, each log
    factor's prior variance) times what the registry left of it: the contraction (:func:`_contraction`) of the
    sum of the log factors (``log_factors``: draws by factor), since a registry informs the rate, a product, and
    each factor's own marginal barely contracts (a second review, s16: 15% of the base rate's prior variance
    removed read as 5% data)."""
    pv = np.asarray(prior_vars, float)
    return float(np.asarray(kinds, float) @ pv / pv.sum()) * (1.0 - _contraction(np.sum(log_factors, axis=1),
                                                                                 float(pv.sum()), w))


def trigamma(x: Any) -> np.ndarray:
    """The trigamma function (the variance of log X for X ~ Gamma(x); Var log Beta(a, b) = trigamma(a) -
    trigamma(a + b)), in numpy alone (the answer's path imports no scipy): the recurrence up to 6, then the
    asymptotic series (relative error below 1e-8)."""
    x = np.array(x, float, ndmin=1)
    out = np.zeros_like(x)
    while (small := x < 6).any():
        out[small] += 1.0 / x[small] ** 2
        x[small] += 1.0
    inv = 1.0 / x
    i2 = inv * inv
    return out + inv + i2 / 2 + inv * i2 * (1 / 6 - i2 * (1 / 30 - i2 * (1 / 42 - i2 / 30)))


def _contraction(post: np.ndarray, prior_var: float, w: np.ndarray) -> float:
    """1 - Var_post / Var_prior in [0, 1]: the share of the prior's variance the data removed."""
    if prior_var <= 0:
        return 0.0
    m = w @ post
    return float(np.clip(1.0 - (w @ (post - m) ** 2) / prior_var, 0.0, 1.0))


def decompose(game, prov: dict[str, Any] | None = None, *, weights: np.ndarray | None = None, seed: int = 0,
              n_draws: int = DRAWS, max_cells: int = MAX_CELLS) -> dict[str, Any]:
    """The variance decomposition of one answer (see the module docstring), with its details.

    Parameters
    ----------
    game : palsy.model.game.Game
        The answer's game on the full patient (``answer`` builds it; the model's own answer, without
        ``--pretest``).
    prov : dict, optional
        :func:`provenance` of the fit (``draws.meta["rests_on"]``); without it blocks are not split
        into data and judgment (kind ``unlabelled``).
    weights : ndarray, optional
        The answer's PSIS weights when the patient is a library case left out.

    Returns
    -------
    dict
        ``rows`` (as :func:`rests_on`), ``blocks`` (per block its share, judgment part, Monte Carlo
        error of the share), ``variance`` (of L over the draws), ``mcse`` of the answer's mean log
        odds, ``ess``, ``method``, ``draws`` used, ``independence`` (:func:`_independence`),
        ``probability``: the same blocks' shares of the variance of P.
    """
    t = game.t
    draws = t.draws
    n_all = draws.n
    rng = np.random.default_rng([seed, 19])
    # thin the draws when the rate part's cells would be too many (every stratum of an unknown context)
    n_strata = int(np.sum(t.st.stratum_mask({name: game.patient.level(name) for name in t.schema.context}) > 0))
    n = min(n_all, n_draws, max(250, max_cells // max(1, n_strata * len(t.component_cause) * 8)))
    sel = np.arange(n_all) if n >= n_all else np.sort(rng.choice(n_all, n, replace=False))
    w_all = None if weights is None else np.asarray(weights, float)
    w = None if w_all is None else w_all[sel] / w_all[sel].sum()
    partner = (rng.permutation(sel) if w is None else sel[rng.choice(len(sel), len(sel), p=w)])
    pieces = _Pieces(game, partner, sel)
    causes = pieces.causes
    blocks = block_list(causes)
    hyb = _Hybrids(pieces, blocks)
    # the same orders on both scales (the P scale then reuses every hybrid's log odds)
    pairs = (sel, partner)  # the draws behind A and B of each pair: their shared draws in each share's error
    res = shapley_effects(hyb, len(blocks), weights=w, rng=np.random.default_rng([seed, 21]), draw_ids=pairs)
    f_a = res["f_a"]
    ww = res["weights"]
    # the P scale: the same hybrids through expit (cached components)
    res_p = shapley_effects(lambda fb: _expit(hyb(fb)), len(blocks), weights=w, rng=np.random.default_rng([seed, 21]),
                            draw_ids=pairs)
    p = draws.params
    # selection: half the variance gamma explains of infiltration's frequencies' first-order effect
    sel_share = {"log_odds": 0.0, "probability": 0.0}
    sel_error = {"log_odds": 0.0, "probability": 0.0}
    i_inf = next(i for i, b in enumerate(blocks) if b["id"] == f"freq:{INFILTRATION}")
    if "gamma" in p:
        only_inf = np.ones((1, len(blocks)), bool)
        only_inf[0, i_inf] = False
        g = p["gamma"][sel]
        design = np.stack([np.ones_like(g), g - g.mean(), (g - g.mean()) ** 2], axis=1)
        for scale, (r_, fn) in {"log_odds": (res, hyb), "probability": (res_p, lambda fb: _expit(hyb(fb)))}.items():
            y = fn(only_inf)[0]
            sw = np.sqrt(ww)
            coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
            fit = design @ coef
            v_g = float(ww @ (fit - ww @ fit) ** 2)
            room = max(r_["effects"][i_inf], 0.0)
            moved = min(0.5 * v_g, room)
            r_["effects"][i_inf] -= moved
            sel_share[scale] = moved
            if moved > 0 and r_["total"] > 0:
                # the moved share's own linearised terms (a weighted variance of the fit, over the total):
                # it leaves infiltration's frequencies with its Monte Carlo error
                moved_terms = 0.5 * ww * (fit - ww @ fit) ** 2
                z = (moved_terms - moved / r_["total"] * r_["total_terms"]) / r_["total"]
                r_["terms"][i_inf] -= z
                r_["mc_error"] = share_errors(r_["terms"], r_["order_error"], pairs) * r_["total"]
                sel_error[scale] = float(share_errors(z[None, :], np.zeros(1), pairs)[0]) * r_["total"]
                # and the regression's own sampling error, which the linearised terms leave out (they take the fit
                # as known): a bootstrap of the draws (a statistician's review, s16: the error had been a quarter of
                # the spread over seeds)
                boot = np.random.default_rng([seed, 23])
                again = []
                for _ in range(SELECTION_BOOTSTRAP):
                    idx = boot.choice(len(y), len(y), p=ww)
                    cb, *_ = np.linalg.lstsq(design[idx], y[idx], rcond=None)
                    again.append(min(0.5 * float(np.var(design[idx] @ cb)), room))
                sel_error[scale] = math.hypot(sel_error[scale], float(np.std(again, ddof=1)))
    # Monte Carlo error of the answer's mean: Var(L) / ESS over every draw, in chain order
    chains = int((draws.meta.get("settings") or {}).get("chains", 1))
    # with no finding the answer is the prior's log odds, which vary by draw (a constant had given a variance,
    # an error and an ESS of 0, 0 and n: s16 review)
    full = game.value(np.ones((1, game.n_players), bool))[0] if game.n_players else game.log_odds(game.base)
    w_full = np.full(n_all, 1.0 / n_all) if w_all is None else w_all / w_all.sum()
    e = ess(full, chains)
    if w_all is not None:  # importance weights lower the effective sample size
        e = e * (1.0 / np.sum(w_full ** 2)) / n_all
    var_l = float(w_full @ (full - w_full @ full) ** 2)
    p_full = _expit(full)
    var_p = float(w_full @ (p_full - w_full @ p_full) ** 2)
    mc_rel = 1.0 / max(e, 1.0)  # MCSE^2 / Var, the same on both scales
    judg, named = _judgment(blocks, pieces, prov, f_a, ww, sel)
    out_blocks = []
    for r_, sel_v, sel_e in ((res, sel_share["log_odds"], sel_error["log_odds"]),
                             (res_p, sel_share["probability"], sel_error["probability"])):
        eff_s = np.clip(r_["effects"], 0.0, None)  # a negative estimate is Monte Carlo noise around 0
        tot = eff_s.sum() + sel_v
        scale = 1.0 / (tot * (1.0 + mc_rel)) if tot > 0 else 0.0
        rows = []
        for b, x, err in zip(blocks, eff_s, r_["mc_error"], strict=True):
            rows.append({"id": b["id"], "source": b["source"], "share": x * scale, "judgment": judg[b["id"]],
                         "mc_error": err * scale, "evidence": named.get(b["id"], [])})
        if "gamma" in p:
            rows.append({"id": "selection", "source": "selection of published cases", "share": sel_v * scale,
                         "judgment": judg.get("selection"), "mc_error": sel_e * scale,
                         "evidence": named.get("selection", [])})
        rows.append({"id": "monte_carlo", "source": MONTE_CARLO, "share": mc_rel / (1.0 + mc_rel),
                     "judgment": None, "mc_error": 0.0})
        out_blocks.append(rows)
    indep = _independence(hyb, len(blocks), res["active"], f_a, ww)
    return {
        "rows": _rows(out_blocks[0]), "blocks": out_blocks[0],
        "probability": {"rows": _rows(out_blocks[1]), "blocks": out_blocks[1], "variance": var_p},
        "variance": var_l, "estimated_variance": res["total"], "mcse": math.sqrt(var_l * mc_rel), "ess": e,
        "method": res["method"], "hybrids": res["hybrids"] + res_p["hybrids"], "draws": int(n),
        "independence": indep,
    }


def _independence(hyb, n_blocks: int, active: list[int], f_a: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """How far the blocks are from independent, as the answer sees it: for each active block b, the
    hybrid with b from B and the rest from A is drawn from P(x_b) P(x_rest), which is the posterior only
    if b is independent of the rest; its mean and variance against the answer's own (differences in
    standard deviations of L, and relative). Monte Carlo noise alone gives about sqrt(2 / draws)."""
    if not active:
        return {"mean_shift_sd": 0.0, "variance_ratio_change": 0.0}
    fb = np.eye(n_blocks, dtype=bool)[active]
    y = hyb(fb)  # (active, n)
    m0, v0 = float(w @ f_a), float(w @ (f_a - w @ f_a) ** 2)
    m, v = y @ w, ((y - (y @ w)[:, None]) ** 2) @ w
    sd = math.sqrt(v0) if v0 > 0 else 1.0
    return {"mean_shift_sd": float(np.max(np.abs(m - m0)) / sd),
            "variance_ratio_change": float(np.max(np.abs(v / v0 - 1.0))) if v0 > 0 else 0.0}


#: How many judgments a block names as what it rests on most (``evidence`` of its judgment row).
JUDGMENTS_NAMED = 5


def _top(keys: list[str | None], weight: np.ndarray) -> list[str]:
    """The keys of the largest weights (summed per key), largest first, at most :data:`JUDGMENTS_NAMED`; none
    that explains less than a fiftieth of the largest."""
    total: dict[str, float] = {}
    for k, x in zip(keys, np.asarray(weight, float), strict=True):
        if k is not None and x > 0:
            total[k] = total.get(k, 0.0) + float(x)
    top = max(total.values(), default=0.0)
    # below a fiftieth of the largest, an importance is at the level of the subset's noise (Cov^2 of independent draws)
    return [k for k, x in sorted(total.items(), key=lambda kv: -kv[1]) if x > 0.02 * top][:JUDGMENTS_NAMED]


def _applies(factor: str, patient) -> bool:  # noqa: ANN001
    """Whether a rate factor ('zoster: remission=not_in_remission', or an interaction of several levels) can be the
    patient's: a multiplier of a level the patient is known not to have cannot move the answer (its importance is
    the subset's noise)."""
    return all(patient.level(f) in (None, lv) for f, lv in factor_levels(factor)[2].items())


def _judgment(blocks, pieces: _Pieces, prov: dict[str, Any] | None, f_a: np.ndarray, w: np.ndarray,
              sel: np.ndarray) -> tuple[dict[str, float | None], dict[str, list[str]]]:
    """The judgment share of each block (None without provenance), and the judgments each rests on most for this
    answer: keys (``cohorts:<entry id>``, ``rates:<factor>``, ``shares:<context finding>``,
    ``model:<reasoning of model.yaml>``) of the judged parameters that explain most of the answer's variance, so that a page
    gives the reasoning of what this answer, in this variant, with these findings, rests on (a second review, s16:
    a page had listed judgments of the other variant and of findings the patient did not have)."""
    out: dict[str, float | None] = {b["id"]: None for b in blocks}
    out["selection"] = None
    named: dict[str, list[str]] = {}
    if not prov:
        return out, named
    t = pieces.t
    p = t.draws.params
    causes = pieces.causes

    def weighted(u: np.ndarray, j: np.ndarray) -> float:
        j = np.asarray(j, float)
        return float(u @ j / u.sum()) if u.sum() > 0 else float(j.mean()) if len(j) else 1.0

    # rate factors: their kind in rates.yaml; with a hospital registry in the fit, what the registry removed of the
    # prior variance of the cause's log rate (the sum of its factors that this answer rests on: the registry informs
    # the product, and each factor's own marginal barely contracts) is data (a registry review, s16)
    facs = prov.get("rate_factors") or []
    registry_used = bool((t.draws.meta.get("registry") or {}).get("used"))
    ra = t.draws.rate_arrays
    prior_var = {"lognormal": np.asarray(ra.lognormal_sigma, float) ** 2,
                 "beta": trigamma(ra.beta_a) - trigamma(np.asarray(ra.beta_a, float) + np.asarray(ra.beta_b, float))}
    cols = {"lognormal": np.log(p["rate_lognormal"][sel]) if "rate_lognormal" in p else None,
            "beta": np.log(p["rate_beta"][sel]) if "rate_beta" in p else None}
    pos = {"lognormal": 0, "beta": 0}
    per_cause: dict[str, list[tuple[np.ndarray, float, float, str]]] = {}
    for f in facs:
        i = pos[f["family"]]
        pos[f["family"]] += 1
        per_cause.setdefault(f["cause"], []).append((cols[f["family"]][:, i], f["judgment"],
                                                     float(prior_var[f["family"]][i]), f["name"]))
    for c in causes:
        items = per_cause.get(c) or []
        if not items:
            out[f"rate:{c}"] = 1.0
            continue
        u = _importance(f_a, np.stack([x for x, *_ in items], axis=1), w)
        kinds = np.array([j for _, j, _, _ in items])
        out[f"rate:{c}"] = weighted(u, kinds)
        if registry_used:  # the factors of the strata the patient can be in (the others' importance is noise)
            used = np.array([_applies(n, pieces.game.patient) for *_, n in items])
            out[f"rate:{c}"] = rate_judgment(kinds[used], np.array([v for _, _, v, _ in items])[used],
                                             np.stack([x for x, *_ in items], axis=1)[:, used], w)
        named[f"rate:{c}"] = _top([f"rates:{n}" if j > 0 and _applies(n, pieces.game.patient) else None
                                   for _, j, _, n in items], u * kinds)
    # shares: per context finding, its cells' kinds, weighted by how much its log share at the patient's
    # compatible strata explains
    r = t.draws.rate_arrays
    levels = np.array(np.unravel_index(pieces.M, tuple(int(x) for x in r.strata_shape))).T
    xs, js = [], []
    for f in r.context:
        axes = [int(a) for a in r.share_axes[f]]
        arr = np.log(p[f"share_{f}"][sel][(slice(None), *[levels[:, a] for a in axes])])
        xs.append(arr.mean(axis=1))
        js.append((prov.get("shares") or {}).get(f, {}).get("judgment", 1.0))
    u_sh = _importance(f_a, np.stack(xs, axis=1), w)
    out["shares"] = weighted(u_sh, np.array(js))
    named["shares"] = _top([f"shares:{f}" for f in r.context], u_sh * np.array(js))
    # node parameters: prior pseudo-counts against weighted counts and case reports
    fr = prov.get("free") or {}
    names = fr.get("names") or []
    judg = np.array(fr.get("judgment") or [], float)
    comp = fr.get("component") or []
    sharing = fr.get("sharing") or []
    entry = fr.get("entry") or [None] * len(names)
    # a judgment about a finding the patient does not have cannot move the answer (the finding is marginalised): its
    # parameter's importance is correlation alone; nor can a node off the path of the level the patient has
    patient = pieces.game.patient
    sc = t.schema

    def known(node_name: str) -> bool:
        node = t.st.node_names.index(node_name)
        item = t.st.nodes[node].item
        if item == sc.lp.name:
            return bool(patient.csf)
        if item.startswith(sc.profile):
            return patient.level(sc.profile) is not None
        level = patient.level(item) if item in sc.by_name else None
        if level is None:
            return item not in sc.by_name
        path = t.st.group_path(item, (level,))  # the nodes whose product is P(level): those that move it
        return path is None or node in {n for n, _ in path}

    keys = [f"cohorts:{e}" if e and known(n.split(" | ", 1)[1]) else None for e, n in zip(entry, names, strict=True)]
    theta_new = p.get("theta_new", p["theta"])[sel]
    st = t.st
    comps = list(t.draws.components)
    # the free parameters' values on the draws the answers use: each one's first copy in theta_new
    x_free = []
    for name, c in zip(names, comp, strict=True):
        node = st.node_names.index(name.split(" | ", 1)[1])
        k = 0 if c is None else comps.index(c)
        x_free.append(theta_new[:, k, node])
    x_free_a = _logit(np.stack(x_free, axis=1)) if x_free else np.zeros((len(sel), 0))
    u_free = _importance(f_a, x_free_a, w) if x_free else np.zeros(0)
    cause_of_comp = dict(zip(comps, t.draws.component_causes, strict=True))
    for c in causes:
        idx = [i for i, cc in enumerate(comp) if cc is not None and cause_of_comp[cc] == c]
        u, j = u_free[idx], judg[idx]
        named[f"freq:{c}"] = _top([keys[i] for i in idx], u * j)
        if c == INFILTRATION and "omega" in p and prov.get("omega_alpha"):
            alpha = np.array(prov["omega_alpha"], float)
            a0 = alpha.sum(-1, keepdims=True)
            prior_var_om = alpha * (a0 - alpha) / (a0 ** 2 * (a0 + 1))
            om = p["omega"][sel]
            jo = np.array([1.0 - _contraction(om[:, li, fi], prior_var_om[li, fi], w)
                           for li in range(om.shape[1]) for fi in range(om.shape[2])])
            uo = _importance(f_a, _logit(om.reshape(len(sel), -1)), w)
            u, j = np.concatenate([u, uo]), np.concatenate([j, jo])
            if float(uo @ jo) > 0:
                named[f"freq:{c}"].append("model:form_prior")  # the forms' weights (omega's prior)
        out[f"freq:{c}"] = weighted(u, j)
    lab = [i for i, s in enumerate(sharing) if s == "shared"]
    out["lab"] = weighted(u_free[lab], judg[lab])
    named["lab"] = _top([keys[i] for i in lab], u_free[lab] * judg[lab])
    if "tau" in p and prov.get("tau_sigma"):
        s2 = float(prov["tau_sigma"]) ** 2 * (1 - 2 / math.pi)
        out["delta"] = 1.0 - _contraction(p["tau"][sel], s2, w)
    else:
        out["delta"] = 1.0
    named["delta"] = ["model:synthesis"]
    if "gamma" in p and prov.get("gamma_sigma"):
        out["selection"] = 1.0 - _contraction(p["gamma"][sel], float(prov["gamma_sigma"]) ** 2, w)
        named["selection"] = ["model:synthesis"]
    return out, named


def _rows(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``{source, kind, share, mc_error}`` rows: each block split into judgment and data; largest first, the
    answer's own Monte Carlo row last (the report's note names it as the last: a second review, s16, found it
    sorted among the others). A judgment row also names, in ``evidence``, the judgments it rests on most for
    this answer (:func:`_judgment`).

    ``mc_error`` is the Monte Carlo error of the block's share taken in the row's part (the split's own error,
    from the same subset of draws, is not in it): a share is good to a few points, not to the 0.1% its float
    shows, so the pages print whole percents beside it (a statistician's review, s16, measured the shares
    over 40 seeds moving by 2-5 points)."""
    rows = []
    for b in blocks:
        if b["id"] == "monte_carlo":
            rows.append({"source": b["source"], "kind": "monte_carlo", "share": b["share"], "mc_error": 0.0})
            continue
        j = b["judgment"]
        if j is None:
            rows.append({"source": b["source"], "kind": "unlabelled", "share": b["share"], "mc_error": b["mc_error"]})
            continue
        for kind, part in (("judgment", j), ("data", 1.0 - j)):
            rows.append({"source": b["source"], "kind": kind, "share": b["share"] * part,
                         "mc_error": b["mc_error"] * part, **({"evidence": list(b.get("evidence") or [])}
                                                              if kind == "judgment" else {})})
    rows = [r for r in rows if r["share"] > 0]
    total = sum(r["share"] for r in rows)
    for r in rows:
        r["share"] = r["share"] / total if total > 0 else 0.0
        r["mc_error"] = float(r["mc_error"]) / total if total > 0 else 0.0
    return sorted(rows, key=lambda r: (r["kind"] == "monte_carlo", -r["share"]))


def rests_on(game, prov: dict[str, Any] | None = None, *, weights: np.ndarray | None = None,
             seed: int = 0) -> list[dict[str, Any]]:
    """What one answer rests on: ``[{source, kind, share, mc_error}]`` with kind ``judgment``, ``data`` or
    ``monte_carlo`` (``unlabelled`` without provenance), shares of the variance of the log odds of
    infiltration summing to 1, largest first, each with the Monte Carlo error of its share (see the module
    docstring for the method).

    Parameters
    ----------
    game : palsy.model.game.Game
        The answer's game on the full patient.
    prov : dict, optional
        :func:`provenance` of the fit, as stored in the draws' metadata (``meta["rests_on"]``).
    weights : ndarray, optional
        The answer's PSIS weights (a library case left out).
    seed : int
        Seed of the partner draws and of the random orders (the answer is reproducible).
    """
    return decompose(game, prov, weights=weights, seed=seed)["rows"]


def sentence(rows: list[dict[str, Any]]) -> str:
    """One line for page 1: "Most of the uncertainty in this answer's odds of infiltration is the base rate of
    infiltration, an expert judgment." (the largest block, expert judgment and data together, and which of
    them carries most of it). The shares are of the log odds' variance: the sentence says so, since near 0 or
    1 the blocks that spread the odds need not be those that spread the probability (s16 review)."""
    blocks: dict[str, dict[str, float]] = {}
    for r in rows:
        if r["kind"] == "monte_carlo":
            continue
        blocks.setdefault(r["source"], {}).setdefault(r["kind"], 0.0)
        blocks[r["source"]][r["kind"]] += r["share"]
    if not blocks:
        return "The uncertainty in this answer could not be attributed."
    source, parts = max(blocks.items(), key=lambda kv: sum(kv[1].values()))
    share = sum(parts.values())
    j, d = parts.get("judgment", 0.0), parts.get("data", 0.0)
    what = ("an expert judgment" if j >= 2 * d else "mostly data" if d >= 2 * j
            else "expert judgment and data together") if j + d > 0 else "not labelled"
    lead = "Most of the uncertainty in this answer's odds of infiltration" if share >= 0.5 else \
        f"The largest part of the uncertainty in this answer's odds of infiltration ({round(100 * share)}%)"
    return f"{lead} is the {source}, {what}."


# --- the other variant -------------------------------------------------------------------------------

def variant_threshold(draws) -> float:  # noqa: ANN001
    """The difference in P(infiltration) (absolute) beyond which two variants' answers are model uncertainty
    the answer names (``variants.differ_by`` of ``priors/model.yaml``, stored with the draws)."""
    return float(draws.meta["answer_settings"]["variants"]["differ_by"])


def variant_probability(other_draws, patient, *, this: float | None = None, ci: float = 0.9, tables=None,
                        causes: tuple[str, ...] | None = None, threshold: float | None = None) -> dict[str, Any]:
    """The patient's P(infiltration) under another variant's posterior (issue 19 item 4), for the answer's
    JSON ``variants`` and page 1 when the variants disagree.

    Parameters
    ----------
    other_draws : palsy.model.draws.Draws
        The other variant's posterior (same evidence).
    patient : palsy.model.findings.Patient
    this : float, optional
        The answer's own mean P(infiltration); with it, ``difference`` and ``differs``.
    threshold : float, optional
        ``differs`` beyond it (default: :func:`variant_threshold` of ``other_draws``).
    tables : palsy.model.game.Tables, optional
        Precomputed tables of ``other_draws`` (a service keeps one per variant).
    causes : tuple of str, optional
        The causes weighed (``--causes``), as the answer's.

    Returns
    -------
    dict
        ``variant``, ``probability`` (mean, median, interval; the patient's own library case left out by
        PSIS, as the answer does), and with ``this``: ``difference`` (other minus this) and ``differs``
        (|difference| > ``threshold``).
    """
    from palsy.model import answer as A  # the answer's own path (numpy only)
    from palsy.model import game as G
    from palsy.model.psis import psis_weights

    t = tables or A.Tables(other_draws)
    plist = G.players(patient)
    game = G.Game(t, plist, patient, A.active_causes(t.causes, causes), t.log_prior, np.zeros_like(t.level_lp[:, :, 0]))
    lo = game.value(np.ones((1, len(plist)), bool))[0] if plist else game.log_odds(t.log_prior)
    idx = other_draws.case_index(patient.id)
    w = psis_weights(-other_draws.case_loglik[idx])[0] if idx is not None else None
    prob = A.probability_summary(lo, ci, w)
    threshold = variant_threshold(other_draws) if threshold is None else threshold
    out = {"variant": other_draws.variant, "probability": prob, "threshold": threshold}
    if this is not None:
        diff = prob["mean"] - this
        out.update({"difference": diff, "differs": bool(abs(diff) > threshold)})
    return out
