"""The likelihood of any subset of a patient's findings, per posterior draw: the value function that the
answer, its contributions and its look-ahead share (docs/design.md §4).

For each draw, cause c and observed findings x_S (a subset S of the patient's findings, the others
marginalised):

    log P(c, x_S) = log P(c) + log sum_{components k of c} p(x_S, k | c)

with the context findings entering through the rate model (P(strata, k | c)), each tree finding through
its level's probability, each LP through the CSF model of :mod:`palsy.model.lp` (its contamination
through P(blasts circulate | the context known), from the patient-time shares alone, so the same for
every cause), and the CSF profile jointly with the first LP's class: after a positive first LP the
profile's distribution is the same for every cause (it says nothing about the cause); after a negative
one it is each cause's own; with the first LP's result unknown, the two are mixed by its class
probability. Pure numpy over the draws (the warm answer path).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import structure as ST
from palsy.model.draws import Draws

INFILTRATION = "infiltration"
CHUNK = 32  # subsets evaluated at once (bounds memory: CHUNK x draws x components)


@dataclasses.dataclass(frozen=True)
class Player:
    """One observed finding: ``finding`` (an LP with ``index`` 1, 2, ... and the ``lp`` itself) and its
    ``value`` (a level, or the LP's code ``cytology=negative,flow=positive``)."""

    finding: str
    index: int | None
    value: str
    lp: F.LP | None = dataclasses.field(default=None, compare=False)

    @property
    def label(self) -> str:
        return f"LP {self.index} {self.value}" if self.lp is not None else f"{self.finding}: {self.value}"


def players(patient: F.Patient, context: bool = True) -> list[Player]:
    """The observed findings of ``patient`` in clinical order (unknown ones are not players).

    Scope findings (``forehead``) enter no likelihood and are not players; ``context=False`` leaves out
    the context findings (a clinician's ``--pretest`` already accounts for them).
    """
    sc = patient.schema
    out = []
    for name in sc.findings:
        if name in sc.scope or (not context and name in sc.context):
            continue
        if name == sc.lp.name:
            out += [Player(name, i, lp.code, lp) for i, lp in enumerate(patient.csf, start=1)]
        elif patient.level(name) is not None:
            out.append(Player(name, None, patient.level(name)))
    return out


class Tables:
    """Per-draw probability tables of a posterior (computed once, reused for every query)."""

    def __init__(self, draws: Draws) -> None:
        p = draws.params
        self.draws = draws
        self.n = draws.n
        self.causes = draws.causes
        self.schema = draws.schema
        self.st = ST.of(self.schema)
        self.ix = LP.Index.of(self.st)
        self.component_cause = np.array([self.causes.index(c) for c in draws.component_causes])
        self.cause_components = [np.flatnonzero(self.component_cause == j) for j in range(len(self.causes))]
        r = draws.rate_arrays
        self.log_prior, self.log_sk = LK.component_strata(LK.NUMPY, p, r)  # (S, C), (S, K, N)
        self.p_sk = np.exp(self.log_sk)
        self.share = np.exp(LK.log_shares(LK.NUMPY, p, r))  # (S, N): patient-time share of each stratum
        # the answers use the predictive for a new setting where studies disagree (random effects)
        self.theta = p.get("theta_new", p["theta"])  # (S, K, node)
        self.level_lp = LK.level_logp(LK.NUMPY, self.theta, self.st)  # (S, K, level)
        self.contamination = self.theta[:, 0, self.ix.contamination]  # (S,): shared by every component
        self.traumatic_rate = self.theta[:, 0, self.ix.traumatic]
        finding, level = self.schema.lp.contamination
        self.blasts_strata = self.st.stratum_mask({finding: level})  # (N,) 0/1: strata where blasts circulate
        self.settings = draws.meta["answer_settings"]
        self.default_method = self.settings["unknown_csf_method"]

    def context_term(self, values: dict[str, str | None]) -> np.ndarray:
        """Log P(context, component | cause of the component) with unknowns marginalised (S, K)."""
        return np.log(self.p_sk @ self.st.stratum_mask(values))

    def blasts(self, values: dict[str, str | None]) -> np.ndarray:
        """P(blasts circulate | the context known) per draw (S,), from the patient-time shares alone."""
        mask = self.st.stratum_mask(values)
        return (self.share @ (mask * self.blasts_strata)) / (self.share @ mask)

    def lp_logp(self, masks: np.ndarray, traumatic: str | None, blasts: np.ndarray) -> np.ndarray:
        """Log P(an LP's result patterns | component) (..., S, K) for pattern ``masks`` (..., 4), given
        the tap's traumatic status (None: unknown) and P(blasts circulate) per draw (S,)."""
        t = self.traumatic_rate if traumatic is None else float(traumatic == "yes")
        kappa = (self.contamination * blasts * t)[:, None]  # (S, 1)
        pat = LP.patterns(LK.NUMPY, self.theta, self.ix, kappa)  # (S, K, 4)
        return np.log(np.einsum("skp,...p->...sk", pat, masks))

    def level(self, item: str, level: str) -> np.ndarray:
        """Log P(level | component) of a tree item (S, K)."""
        return self.level_lp[:, :, self.st.level_index[(item, level)]]

    def by_cause(self, a: np.ndarray) -> np.ndarray:
        """Per-cause log mixture of per-component log probabilities (..., K) -> (..., C)."""
        # a cause of one component is that component (no log-sum-exp: most causes, every cause under independent)
        return np.stack([a[..., idx[0]] if len(idx) == 1 else LK.NUMPY.logsumexp(a[..., idx], axis=-1)
                         for idx in self.cause_components], axis=-1)


def softmax(lp: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, zero outside ``active`` causes."""
    lp = np.where(active, lp, -np.inf)
    return np.exp(lp - LK.NUMPY.logsumexp(lp, axis=-1)[..., None])


class Game:
    """The players of one patient and the value of any subset of them, per draw.

    ``base`` (S, C) is the log prior of each cause before the players and ``offset`` (S, K) a
    per-component log term that applies whatever the subset (with ``--pretest``: the context).
    ``known_context`` (finding -> level) is context that applies whatever the subset (with
    ``--pretest``, the context findings are not players but still say whether blasts circulate).
    """

    def __init__(self, t: Tables, plist: list[Player], patient: F.Patient, active: np.ndarray,
                 base: np.ndarray, offset: np.ndarray, known_context: dict[str, str | None] | None = None) -> None:
        self.t = t
        self.players = plist
        self.patient = patient
        self.active = active
        self.base = base
        self.offset = offset
        self.inf = t.causes.index(INFILTRATION)
        sc, st = t.schema, t.st
        self.n_players = len(plist)
        self.ctx = [i for i, p in enumerate(plist) if p.finding in sc.context]
        self.lps = [i for i, p in enumerate(plist) if p.lp is not None]
        self.profile = next((i for i, p in enumerate(plist) if p.finding == sc.profile), None)
        self.tree = [i for i, p in enumerate(plist) if i not in self.ctx and i not in self.lps and i != self.profile]
        self.tree_lp = (np.stack([t.level(plist[i].finding, plist[i].value) for i in self.tree])
                        if self.tree else np.zeros((0, t.n, len(t.component_cause))))
        fixed = dict(known_context or {})
        n_codes = 2 ** len(self.ctx)
        ctx_values = []
        for code in range(n_codes):  # bit j = context player j in the subset
            values = dict(fixed)
            values.update({plist[i].finding: plist[i].value for j, i in enumerate(self.ctx) if code >> j & 1})
            ctx_values.append(values)
        self.ctx_terms = np.stack([t.context_term(v) for v in ctx_values])  # (codes, S, K)
        blasts = np.stack([t.blasts(v) for v in ctx_values])  # (codes, S)
        methods = t.ix.methods
        # each LP's log-probability per code of the context known (its contamination depends on it)
        self.lp_masks = [LP.obs_mask(dict(plist[i].lp.results), methods) for i in self.lps]
        self.lp_terms = np.stack([np.stack([t.lp_logp(m, plist[i].lp.traumatic, blasts[c])
                                            for m, i in zip(self.lp_masks, self.lps, strict=True)])
                                  for c in range(n_codes)]) if self.lps else np.zeros((n_codes, 0, t.n, 1))
        # the CSF profile, modelled jointly with the first LP's class
        self.first = patient.csf[0] if patient.csf else None
        self.lp1 = self.lps[0] if self.lps else None
        self.first_methods = self.first.methods if self.first else methods
        self.first_traumatic = self.first.traumatic if self.first else None
        if self.profile is not None:
            level = plist[self.profile].value
            self.after_pos = t.level(st.profile_item("positive"), level)  # (S, K): the same for every k
            self.after_neg = t.level(st.profile_item("negative"), level)
            self.prof_joint = None
            if self.first is not None:
                self.prof_joint = self.after_pos if self.first.positive else self.after_neg
            pos = LP.positive_mask(self.first_methods, methods)
            self.prof_marg = np.stack([self.profile_marginal(pos, self.first_traumatic, blasts[c])
                                       for c in range(n_codes)])  # (codes, S, K)
        self.blasts_by_code = blasts

    def profile_marginal(self, positive: np.ndarray, traumatic: str | None, blasts: np.ndarray) -> np.ndarray:
        """Log P(profile) with the first LP's class marginalised: its class probability (from
        ``positive``, the patterns of a positive class) mixes the profile after a positive and after a
        negative LP (S, K)."""
        p_pos = np.exp(self.t.lp_logp(positive, traumatic, blasts))
        return np.log(p_pos * np.exp(self.after_pos) + (1 - p_pos) * np.exp(self.after_neg))

    def _codes(self, masks: np.ndarray) -> np.ndarray:
        return sum(masks[..., i].astype(int) << j for j, i in enumerate(self.ctx)) if self.ctx \
            else np.zeros(masks.shape[:-1], int)

    def log_p_components(self, masks: np.ndarray) -> np.ndarray:
        """Log p(x_S, component | cause) + offset for boolean ``masks`` (m, n) or per draw (m, S, n)."""
        per_draw = masks.ndim == 3
        m = len(masks)
        t = self.t
        if self.tree:
            sub = masks[..., self.tree].astype(float)
            a = np.einsum("msp,psk->msk" if per_draw else "mp,psk->msk", sub, self.tree_lp)
        else:
            a = np.zeros((m, t.n, len(t.component_cause)))
        code = self._codes(masks)  # (m,) or (m, S)
        draw = np.arange(t.n)
        a = a + (self.ctx_terms[code, draw[None, :]] if per_draw else self.ctx_terms[code])
        for j, i in enumerate(self.lps):
            term = self.lp_terms[code, j, draw[None, :]] if per_draw else self.lp_terms[code, j]
            a = a + np.where(masks[..., i][..., None, None] if not per_draw else masks[..., i][..., None], term, 0.0)
        if self.profile is not None:
            has_p = masks[..., self.profile]
            has_1 = masks[..., self.lp1] if self.lp1 is not None else np.zeros_like(has_p)
            marg = self.prof_marg[code, draw[None, :]] if per_draw else self.prof_marg[code]
            joint = self.prof_joint if self.prof_joint is not None else 0.0
            both = (has_p & has_1)[..., None] if per_draw else (has_p & has_1)[:, None, None]
            only = (has_p & ~has_1)[..., None] if per_draw else (has_p & ~has_1)[:, None, None]
            a = a + np.where(both, joint, 0.0) + np.where(only, marg, 0.0)
        return a + self.offset

    def log_joint(self, masks: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Log P(c) + log p(x_S | c) per cause (m, S, C); ``extra`` (S, K) adds a further result."""
        out = []
        for start in range(0, len(masks), CHUNK):
            a = self.log_p_components(masks[start:start + CHUNK])
            if extra is not None:
                a = a + extra
            out.append(self.base + self.t.by_cause(a))
        return np.concatenate(out) if out else np.zeros((0, self.t.n, len(self.t.causes)))

    def log_odds(self, lj: np.ndarray) -> np.ndarray:
        """Log odds of infiltration against the other active causes (..., C) -> (...)."""
        others = np.where(self.active & (np.arange(len(self.active)) != self.inf), lj, -np.inf)
        return lj[..., self.inf] - LK.NUMPY.logsumexp(others, axis=-1)

    def value(self, masks: np.ndarray) -> np.ndarray:
        """Log odds of infiltration given each subset of findings (m, S)."""
        return self.log_odds(self.log_joint(masks))

    # -- what a further result adds (the look-ahead) ------------------------------------------------
    @property
    def blasts_full(self) -> np.ndarray:
        """P(blasts circulate | every context finding known) per draw (S,)."""
        return self.blasts_by_code[-1] if len(self.blasts_by_code) else self.t.blasts({})

    def lp_extra(self, results: dict[str, str], traumatic: str | None = None) -> np.ndarray:
        """The log-probability (S, K) that a further LP with these ``results`` adds to every finding known,
        as the first LP when none is known (then its CSF profile's reading changes with it)."""
        t = self.t
        term = t.lp_logp(LP.obs_mask(results, t.ix.methods), traumatic, self.blasts_full)
        if self.first is None and self.profile is not None:  # the first LP of a known profile
            positive = any(r == "positive" for r in results.values())
            term = term + (self.after_pos if positive else self.after_neg) - self.prof_marg[-1]
        return term
