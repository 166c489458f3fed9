"""How typical a patient's findings are under the model (docs/design.md §4, atypicality).

The modelled causes sum to one, so a patient whose findings fit none of them well still gets a
confident answer. Per draw, log p(findings | context) of the patient is compared with that of
patients simulated from the model with the same context and the same findings known (each LP read by
the same methods, with the same traumatic status); the tail probability is the share of simulated
patients at most as probable, and the answer is flagged when it is below the threshold of model.yaml.

The tail probability is a Monte Carlo estimate (four simulated patients per draw): its standard error is
reported, and an answer within twice that error of the threshold is said to be so (``within_mc_error``),
as the decision does at its thresholds. Near the threshold the flag itself is a draw of the seed: the
statistical review of 5 December found it flip across seeds for six of the eight random patients
closest to 1%.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from palsy.model import lp as LP
from palsy.model.game import Game, Tables, logsumexp

SIMULATIONS = 4  # simulated patients per draw
#: Simulated reference patients kept per tables (:func:`_kept_simulations`): 128 KB each.
KEPT_SIMULATIONS = 128


def _cumulative(probs: np.ndarray) -> np.ndarray:
    """Each row's cumulative distribution (rows proportional to probabilities)."""
    return np.cumsum(probs, axis=1) / probs.sum(axis=1, keepdims=True)


def _pick(cum: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of cumulative distributions ``cum``: how many of the row's values its uniform
    exceeds (counted a column at a time: numpy's reductions over a few columns cost per row)."""
    above = rng.random(len(cum))[:, None] > cum
    out = above[:, 0].astype(np.intp)
    for j in range(1, cum.shape[1]):
        out += above[:, j]
    return out.clip(0, cum.shape[1] - 1)


def _pick_rows(by_column: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """:func:`_pick` of the rows ``rows`` of cumulative distributions kept a column at a time ``by_column``
    (category, row): the same categories, each column taken at the rows (cheaper than taking the rows)."""
    u = rng.random(len(rows))
    out = np.zeros(len(rows), np.intp)
    for column in by_column:
        out += u > column.take(rows)
    return out.clip(0, len(by_column) - 1)


def _sample(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One category per row of ``probs`` (rows proportional to probabilities)."""
    return _pick(_cumulative(probs), rng)


def atypicality(game: Game, tail: float, rng: np.random.Generator, w: np.ndarray | None = None) -> dict[str, Any]:
    """The tail probability of the patient's findings given their context, and whether it is flagged."""
    t, sc = game.t, game.t.schema
    pres = [i for i, p in enumerate(game.players) if p.finding not in sc.context]
    if not pres:
        return {"flag": False, "tail_probability": 1.0, "threshold": tail, "mc_error": 0.0, "within_mc_error": False}
    n, nd = game.n_players, t.n
    ctx_mask = np.zeros((1, n), bool)
    ctx_mask[0, game.ctx] = True
    comp_lp = game.log_p_components(ctx_mask)[0]  # (S, K): log P(context, k | c) + offset
    lj_k = comp_lp + game.base[:, t.component_cause]
    lj_k = np.where(game.active[t.component_cause], lj_k, -np.inf)
    log_ctx = logsumexp(lj_k)  # (S,)
    obs = logsumexp(np.where(game.active, game.log_joint_full(), -np.inf)) - log_ctx
    key = _simulation_key(game, rng)
    sim = _kept_simulations(t, key, lambda: _simulate(game, pres, lj_k, log_ctx, rng))
    draws = np.tile(np.arange(nd), SIMULATIONS)
    below = (sim <= obs[draws] + 1e-9).reshape(SIMULATIONS, nd).sum(axis=0) / SIMULATIONS  # per draw
    tail_p = float(np.average(below, weights=w))
    mcse = _mc_error(below, tail_p, w)
    return {"flag": bool(tail_p < tail), "tail_probability": tail_p, "threshold": tail, "mc_error": mcse,
            "within_mc_error": bool(abs(tail_p - tail) <= 2 * mcse)}


def _simulation_key(game: Game, rng: np.random.Generator) -> tuple | None:
    """What the simulated patients depend on: the context (its findings and levels), the causes weighed, which
    other findings are known (each LP's tap status and methods, whether the CSF profile is known) and the
    generator's state; never the levels observed of the findings that are not context. None (nothing kept) for
    a clinician's pretest, whose base is the answer's own."""
    if game.base is not game.t.log_prior:
        return None
    ctx = tuple((game.players[i].finding, game.players[i].value) for i in game.ctx)
    known = tuple((p.finding, None if p.lp is None else (p.lp.traumatic, p.lp.methods))
                  for i, p in enumerate(game.players) if i not in game.ctx)
    return (ctx, known, game.profile is not None, game.first_methods, game.first_traumatic,
            tuple(bool(a) for a in game.active), repr(rng.bit_generator.state))


def _kept_simulations(t: Tables, key: tuple | None, simulate: Callable[[], np.ndarray]) -> np.ndarray:
    """``simulate()``, or the simulated patients kept under ``key`` for these tables (the last
    :data:`KEPT_SIMULATIONS`): the patients of a ward share their context and which findings are known, and
    each answer seeds its own generator, so they share their simulated patients to the last bit (tested); only
    the observed patient's own log-probability differs. About 10 ms of a new patient's card.

    The store goes with the node parameters (:meth:`Tables.derived`); a kept entry also remembers the rate
    model's tables it was simulated from (the prior and the strata), and serves only tables that have the very
    same ones (a copy of the tables with other rates, as ``rests_on`` makes, simulates its own)."""
    if key is None:
        return simulate()
    lock, kept = t.derived(("atypicality", "simulations"), lambda: (threading.Lock(), collections.OrderedDict()))
    with lock:
        entry = kept.get(key)
        if entry is not None and entry[0] is t.log_prior and entry[1] is t.p_sk:
            kept.move_to_end(key)
            return entry[2]
    sim = simulate()
    sim.flags.writeable = False
    with lock:
        kept[key] = (t.log_prior, t.p_sk, sim)
        kept.move_to_end(key)
        while len(kept) > KEPT_SIMULATIONS:
            kept.popitem(last=False)
    return sim


def _simulate(game: Game, pres: list[int], lj_k: np.ndarray, log_ctx: np.ndarray,
              rng: np.random.Generator) -> np.ndarray:
    """The log p(findings | context) of :data:`SIMULATIONS` patients simulated per draw from the model, with the
    same context and the same findings known as the patient (row r: draw r % S)."""
    t, sc, st = game.t, game.t.schema, game.t.st
    nd = t.n
    pk = np.exp(lj_k - log_ctx[:, None])  # P(k | context) (S, K)
    # P(blasts | k, context) (S, K, 2): the LPs' contamination depends on it
    by_b = game.ctx_terms[-1]  # every context finding known (the game always has this code)
    log_pb = by_b - game.log_p_context()[..., None]
    # every simulation of every draw at once: row r is draw r % nd (SIMULATIONS patients per draw)
    # (the gathers below take rows of flattened tables: far cheaper than indexing by several arrays)
    draws = np.tile(np.arange(nd), SIMULATIONS)
    nk = pk.shape[1]
    k = _pick_rows(np.ascontiguousarray(_cumulative(pk).T), draws, rng)  # each row's simulated component
    dk = draws * nk + k  # each row's (draw, component)
    b = _sample(np.exp(log_pb.reshape(-1, 2)[dk]), rng)  # and whether blasts circulate
    total = np.zeros((len(draws), nk))  # log p(x_sim | k') for every component k', but the LPs
    by_blasts = log_pb[draws]  # log P(b | k') + the LPs' log p(x_sim | k', b)
    first_positive = None
    for i in pres:
        p = game.players[i]
        if i == game.profile:
            continue
        if p.lp is not None:
            cum, log_reads = _lp_tables(t, p.lp.traumatic, p.lp.methods)
            pick = _pick_rows(cum, dk * 2 + b, rng)  # a full pattern per row
            by_blasts = by_blasts + log_reads[pick * nd + draws]
            if i == game.lp1:
                first_positive = LP.positive_mask(p.lp.methods, t.ix.methods)[pick] > 0
            continue
        cum, by_level = _level_tables(t, p.finding)
        pick = _pick_rows(cum, dk, rng)
        total += by_level[draws * len(cum) + pick]
    if game.profile is not None:
        levels = sc.levels[sc.profile]
        pos_idx = np.array([st.level_index[(st.profile_item("positive"), lv)] for lv in levels])
        neg_idx = np.array([st.level_index[(st.profile_item("negative"), lv)] for lv in levels])
        known_first = first_positive is not None
        p_pos = np.exp(t.lp_logp(LP.positive_mask(game.first_methods, t.ix.methods), game.first_traumatic))
        if not known_first:  # no first LP given: its class is drawn, then marginalised
            first_positive = rng.random(len(draws)) < p_pos.reshape(-1)[dk * 2 + b]
        pos, neg = t.level_lp[:, :, pos_idx], t.level_lp[:, :, neg_idx]  # (S, K, level)
        own = np.where(first_positive[:, None], pos.reshape(-1, len(levels))[dk], neg.reshape(-1, len(levels))[dk])
        v = _sample(np.exp(own), rng)
        after_pos = np.swapaxes(pos, 1, 2).reshape(-1, nk)[draws * len(levels) + v]
        after_neg = np.swapaxes(neg, 1, 2).reshape(-1, nk)[draws * len(levels) + v]
        if known_first:
            total += np.where(first_positive[:, None], after_pos, after_neg)
        else:
            p_pos = p_pos[draws]
            by_blasts = by_blasts + np.log(p_pos * np.exp(after_pos)[..., None]
                                           + (1 - p_pos) * np.exp(after_neg)[..., None])
    total += np.logaddexp(by_blasts[..., 0], by_blasts[..., 1])
    return logsumexp(np.log(np.maximum(pk, 1e-300))[draws] + total)


def _level_tables(t: Tables, finding: str) -> tuple[np.ndarray, np.ndarray]:
    """A tree finding's cumulative distribution over its levels per (draw, component), by level (level, S*K),
    and log P(level | component) per (draw, level) (S*level, K): rows of flattened tables are the cheap
    gathers. The same for every patient: kept with the tables."""
    def make() -> tuple[np.ndarray, np.ndarray]:
        idx = np.array([t.st.level_index[(finding, lv)] for lv in t.schema.levels[finding]])
        lvl = t.level_lp[:, :, idx]  # (S, K, level)
        cum = _cumulative(np.exp(lvl.reshape(-1, len(idx))))
        return np.ascontiguousarray(cum.T), np.swapaxes(lvl, 1, 2).reshape(-1, lvl.shape[1])

    return t.derived(("atypicality", "levels", finding), make)


def _lp_tables(t: Tables, traumatic: str | None, done: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For an LP of this tap status read by the methods ``done``: the cumulative distribution over the four
    result patterns per (draw, component, blasts), by pattern (4, S*K*2), and log P(the results read on ``done`` | k', b)
    for each pattern a row can have drawn (4*S, K, 2). The same for every patient: kept with the tables."""
    def make() -> tuple[np.ndarray, np.ndarray]:
        pat = t.lp_patterns(traumatic)  # (S, K, 4, 2)
        nd, nk = pat.shape[:2]
        by_pattern = np.ascontiguousarray(np.swapaxes(pat, -1, -2)).reshape(-1, LP.N_PATTERNS)  # (S*K*2, 4)
        consistent = np.array([[_agrees(a, c, done, t.ix.methods) for c in range(LP.N_PATTERNS)]
                               for a in range(LP.N_PATTERNS)], float)  # (4, 4): same results on `done`
        reads = np.einsum("skpb,ap->askb", pat, consistent)  # (4, S, K, 2)
        with np.errstate(divide="ignore"):
            return np.ascontiguousarray(_cumulative(by_pattern).T), np.log(reads.reshape(LP.N_PATTERNS * nd, nk, 2))

    return t.derived(("atypicality", "patterns", traumatic, tuple(done)), make)


def _mc_error(per_draw: np.ndarray, mean: float, w: np.ndarray | None) -> float:
    """The standard error of a (weighted) mean over draws taken as independent (the simulations of a draw are
    in its value; the chains' draws are nearly independent, their effective sample size near their number)."""
    q = np.full(len(per_draw), 1.0 / len(per_draw)) if w is None else np.asarray(w, float) / float(np.sum(w))
    return float(np.sqrt(np.sum(q**2 * (per_draw - mean) ** 2)))


def _agrees(a: int, b: int, done: tuple[str, ...], methods: tuple[str, str]) -> bool:
    """Whether patterns ``a`` and ``b`` read the same results by the methods ``done``."""
    first, second = methods
    return (first not in done or (a >> 1) == (b >> 1)) and (second not in done or (a & 1) == (b & 1))
