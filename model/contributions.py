"""How each finding moves the log odds of infiltration (docs/design.md §4): sequential contributions in
clinical order and Shapley values over the same value function (:class:`palsy.model.game.Game`).

Both sum, per draw, to the total shift. Shapley values are exact over the distinct coalitions (identical
LPs are interchangeable) when there are at most :data:`EXACT_LIMIT`, otherwise antithetic permutation
sampling per draw, adding pairs until the Monte Carlo standard error of every mean Shapley value is
below :data:`SHAPLEY_MC_TARGET`.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from palsy.model.game import Game

EXACT_LIMIT = 512  # distinct coalitions up to which Shapley values are exact
SHAPLEY_MC_TARGET = 0.01  # largest Monte Carlo standard error allowed on a Shapley value (log odds)
SHAPLEY_MAX_PAIRS = 64  # antithetic permutation pairs per draw at most


def sequential(game: Game) -> tuple[np.ndarray, np.ndarray]:
    """Per-finding change in the log odds in clinical order (player, draw), and the log joint of
    every prefix (prefix, draw, cause) for the steps of the differential."""
    n = game.n_players
    prefixes = np.tril(np.ones((n + 1, n)), k=-1).astype(bool)
    lj = game.log_joint(prefixes)
    return np.diff(game.log_odds(lj), axis=0), lj


def _types(game: Game) -> list[list[int]]:
    """Groups of interchangeable players: identical LPs (the first LP is its own when the CSF
    profile, modelled jointly with it, is known); every other player alone."""
    groups: dict[Any, list[int]] = {}
    for i, p in enumerate(game.players):
        key = ("lp", p.value) if p.lp is not None and not (game.profile is not None and i == game.lp1) else i
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def shapley(game: Game, rng: np.random.Generator | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Shapley value of each finding over the log odds (player, draw) and how it was computed."""
    n, nd = game.n_players, game.t.n
    if n == 0:
        return np.zeros((0, nd)), {"method": "exact", "coalitions": 1, "mc_error": 0.0}
    groups = _types(game)
    sizes = [len(g) for g in groups]
    n_profiles = math.prod(s + 1 for s in sizes)
    if n_profiles <= EXACT_LIMIT:
        return _exact(game, groups), {"method": "exact", "coalitions": n_profiles, "mc_error": 0.0}
    return _sampled(game, rng or np.random.default_rng(0))


def _exact(game: Game, groups: list[list[int]]) -> np.ndarray:
    n, nd = game.n_players, game.t.n
    sizes = [len(g) for g in groups]
    profiles = list(itertools.product(*(range(s + 1) for s in sizes)))
    index = {k: j for j, k in enumerate(profiles)}
    masks = np.zeros((len(profiles), n), bool)
    for j, k in enumerate(profiles):
        for g, kk in zip(groups, k, strict=True):
            masks[j, g[:kk]] = True
    v = game.value(masks)
    phi_group = np.zeros((len(groups), nd))
    fact = [math.factorial(i) for i in range(n + 1)]
    for t_idx, size_t in enumerate(sizes):
        for k in profiles:
            if k[t_idx] >= size_t:
                continue
            s = sum(k)
            count = math.prod(math.comb(sz - (1 if j == t_idx else 0), kk) for j, (sz, kk) in enumerate(zip(sizes, k, strict=True)))
            w = count * fact[s] * fact[n - s - 1] / fact[n]
            up = list(k)
            up[t_idx] += 1
            phi_group[t_idx] += w * (v[index[tuple(up)]] - v[index[k]])
    phi = np.zeros((n, nd))
    for g, row in zip(groups, phi_group, strict=True):
        phi[g] = row
    return phi


def _sampled(game: Game, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    n, nd = game.n_players, game.t.n
    sums = np.zeros((n, nd))
    sq = np.zeros((n, nd))
    pairs = 0
    mc = np.inf
    while pairs < SHAPLEY_MAX_PAIRS:
        for _ in range(4):
            perm = np.argsort(rng.random((nd, n)), axis=1)  # a permutation per draw
            pair = np.zeros((n, nd))
            for order in (perm, perm[:, ::-1]):  # antithetic: the reversed order
                ranks = np.argsort(order, axis=1)  # position of each player, per draw
                steps = np.arange(n + 1)[:, None, None] > ranks[None, :, :]  # (n+1, S, n): in the prefix
                v = game.value(steps)  # (n+1, S)
                contrib = v[ranks + 1, np.arange(nd)[:, None]] - v[ranks, np.arange(nd)[:, None]]  # (S, n)
                pair += contrib.T / 2
            sums += pair
            sq += pair ** 2
            pairs += 1
        mean = sums / pairs
        var = np.maximum(sq / pairs - mean ** 2, 0.0) / pairs  # variance of each draw's estimate
        mc = float(np.sqrt(var.sum(axis=1)).max() / nd)  # s.e. of the mean Shapley value over draws
        if mc < SHAPLEY_MC_TARGET:
            break
    return sums / pairs, {"method": "sampled", "permutation_pairs": pairs, "mc_error": mc}
