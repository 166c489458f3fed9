"""The likelihood of any subset of a patient's findings, per posterior draw: the value function that the
answer, its contributions and its look-ahead share (docs/design.md §4).

For each draw, cause c and observed findings x_S (a subset S of the patient's findings, the others
marginalised):

    log P(c, x_S) = log P(c) + log sum_{components k of c} p(x_S, k | c)

with the context findings entering through the rate model (P(strata, k | c)), each tree finding through
its level's probability, each LP through the CSF model of :mod:`palsy.model.lp`, and the CSF profile
jointly with the first LP's class: after a positive first LP the profile's distribution is the same for
every cause (it says nothing about the cause); after a negative one it is each cause's own; with the
first LP's result unknown, the two are mixed by its class probability.

Whether blasts circulate is a context finding (a stratum axis) and sets the LPs' contamination: the
likelihood sums over it exactly, P(x, k | c) = sum_b P(context known, b, k | c) prod_LP P(LP | k, b), so
an unknown finding is marginalised exactly. With the blood film known, a positive LP never lowers
P(infiltration), by construction (:mod:`palsy.model.lp`); with it unknown, earlier results update the
chance that blasts circulate differently under each cause, and the direction is measured (``palsy
check``), not enforced. Pure numpy over the draws (the warm answer path).
"""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from palsy.model import findings as F
from palsy.model import likelihood as LK
from palsy.model import lp as LP
from palsy.model import structure as ST
from palsy.model.draws import Draws

INFILTRATION = "infiltration"
CHUNK = 32  # subsets evaluated at once (bounds memory: CHUNK x draws x components)
CONTEXT_CACHE = 64  # context terms kept per Tables (0.5 MB each at 4,000 draws): patients share their contexts


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
        # stored with the draws when they came from the cache (draws.npz): the same arrays, not computed again
        stored = draws.stored_strata()
        self.log_prior, p_sk, self.share = stored or LK.strata_tables(p, draws.rate_arrays)  # (S, C), (S, K, N), (S, N)
        self.p_sk = np.ascontiguousarray(p_sk)  # read as (S*K, N) by every answer: a view, not a copy
        # the answers use the predictive for a new setting where studies disagree (random effects)
        self.theta = p.get("theta_new", p["theta"])  # (S, K, node)
        self.level_lp = LK.level_logp(LK.NUMPY, self.theta, self.st)  # (S, K, level)
        self.contamination = self.theta[:, 0, self.ix.contamination]  # (S,): shared by every component
        self.traumatic_rate = self.theta[:, 0, self.ix.traumatic]
        finding, level = self.schema.lp.contamination
        blasts = self.st.stratum_mask({finding: level})  # (N,) 0/1: strata where blasts circulate
        self.blasts_masks = np.stack([1.0 - blasts, blasts])  # (2, N): blasts absent, present
        self.settings = draws.meta["answer_settings"]
        self._patterns: tuple[np.ndarray, dict[str | None, np.ndarray]] = (self.theta, {})
        # each kept context term with its sum over blasts once asked for (context_summed)
        self._contexts: tuple[np.ndarray, collections.OrderedDict[bytes, list[np.ndarray | None]]] = (
            self.p_sk, collections.OrderedDict())
        self._derived: tuple[tuple[np.ndarray, np.ndarray], dict[Hashable, Any]] = ((self.theta, self.level_lp), {})
        # the kept terms are shared by the answers of a service's threads (a card's and a report's at once)
        self._kept_lock = threading.Lock()
        self.default_method = self.settings["unknown_csf_method"]

    @property
    def log_sk(self) -> np.ndarray:
        """Log P(stratum, component | cause of the component) (S, K, N)."""
        with np.errstate(divide="ignore"):
            return np.log(self.p_sk)

    def context_term(self, values: dict[str, str | None]) -> np.ndarray:
        """Log P(context, component | cause of the component) with unknowns marginalised (S, K)."""
        return np.log(self.p_sk @ self.st.stratum_mask(values))

    def contexts_by_blasts(self, many: list[dict[str, str | None]]) -> np.ndarray:
        """Log P(context, blasts, component | cause) (m, S, K, 2) for each of ``many`` sets of context values:
        the context term split by whether blasts circulate (the LPs' contamination depends on it).

        One matrix product for the contexts not seen lately: the strata table (S, K, N), tens of megabytes, is
        read once for all of them. The last :data:`CONTEXT_CACHE` terms are kept by their strata masks: an
        answer asks for every subset of its context findings, and patients share them. Each column of the
        product is the same whatever the others (tested), so a kept term is the one a new product gives.
        """
        keys = [self.st.stratum_mask(v) for v in many]
        found, new = {}, {}
        with self._kept_lock:
            if self._contexts[0] is not self.p_sk:  # the table was replaced (a test's changed tables)
                self._contexts = (self.p_sk, collections.OrderedDict())
            cache = self._contexts[1]
            for mask in keys:
                key = mask.tobytes()
                if key in cache:
                    cache.move_to_end(key)
                    found[key] = cache[key][0]
                else:
                    new[key] = mask
        if new:
            both = np.stack([m[None, :] * self.blasts_masks for m in new.values()])  # (new, 2, N)
            n = self.p_sk.shape[-1]
            prod = self.p_sk.reshape(-1, n) @ both.reshape(-1, n).T  # (S*K, new*2)
            prod = np.moveaxis(prod.reshape(*self.p_sk.shape[:2], len(new), 2), 2, 0)
            with np.errstate(divide="ignore"):
                terms = np.log(prod)
            with self._kept_lock:
                for key, term in zip(new, terms, strict=True):
                    term = np.ascontiguousarray(term)
                    term.flags.writeable = False
                    found[key] = term
                    cache[key] = [term, None]
                while len(cache) > CONTEXT_CACHE:
                    cache.popitem(last=False)
        return np.stack([found[m.tobytes()] for m in keys])

    def context_summed(self, values: dict[str, str | None], term: np.ndarray) -> np.ndarray:
        """``np.logaddexp(term[..., 0], term[..., 1])``: log P(context, component | cause) summed over whether
        blasts circulate (S, K), for the context ``term`` (S, K, 2) of ``values`` (one of
        :meth:`contexts_by_blasts`). Kept with the context term when ``term`` is the one kept (compared):
        the answers of patients who share a context all ask for it."""
        entry = self._contexts[1].get(self.st.stratum_mask(values).tobytes()) if self._contexts[0] is self.p_sk else None
        if entry is None or not np.array_equal(entry[0], term):
            return np.logaddexp(term[..., 0], term[..., 1])
        if entry[1] is None:
            entry[1] = np.logaddexp(term[..., 0], term[..., 1])
            entry[1].flags.writeable = False
        return entry[1]

    def derived(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """What ``make`` computes from these tables' node parameters alone, for no patient in particular: computed
        once and kept under ``key`` (the atypicality check's sampling tables), again for other parameters.

        Parameters
        ----------
        key : hashable
            Names what ``make`` computes (its module's name first).
        make : callable
            Computes it from these tables' ``theta`` and ``level_lp``; its arrays are made read-only.

        Returns
        -------
        What ``make`` returned, the first time.
        """
        with self._kept_lock:
            if self._derived[0][0] is not self.theta or self._derived[0][1] is not self.level_lp:
                self._derived = ((self.theta, self.level_lp), {})  # tables copied with other draws, or changed
            kept = self._derived[1]
            if key in kept:
                return kept[key]
        value = make()  # outside the lock (it may ask for other kept tables); two threads may both compute it
        for a in value if isinstance(value, tuple) else (value,):
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        with self._kept_lock:
            return kept.setdefault(key, value)

    def lp_patterns(self, traumatic: str | None) -> np.ndarray:
        """P(each result pattern | component, blasts) (S, K, 4, 2) of an LP whose tap is ``traumatic``
        (None: unknown), without (last axis 0) and with (1) circulating blasts; computed once per status
        (an answer asks for it for every LP, every next test and the atypicality check)."""
        if self._patterns[0] is not self.theta:  # tables copied with other draws (rests_on's hybrids)
            self._patterns = (self.theta, {})
        cache = self._patterns[1]
        if traumatic not in cache:
            t = self.traumatic_rate if traumatic is None else float(traumatic == "yes")
            by_blasts = np.stack([LP.patterns(LK.NUMPY, self.theta, self.ix, (self.contamination * blasts * t)[:, None])
                                  for blasts in (0.0, 1.0)], axis=-2)  # (S, K, 2, 4): patterns last, for matmul
            cache[traumatic] = by_blasts
        return np.swapaxes(cache[traumatic], -1, -2)

    def lp_logp(self, masks: np.ndarray, traumatic: str | None) -> np.ndarray:
        """Log P(an LP's result patterns | component, blasts) (..., S, K, 2) for pattern ``masks`` (..., 4),
        given the tap's traumatic status (None: unknown), without (last axis 0) and with (1) circulating
        blasts."""
        if masks.ndim == 1:  # one LP's result: the same for every patient, asked for by most answers (kept)
            return self.derived(("lp_logp", masks.tobytes(), traumatic), lambda: self._lp_logp(masks, traumatic))
        return self._lp_logp(masks, traumatic)

    def _lp_logp(self, masks: np.ndarray, traumatic: str | None) -> np.ndarray:
        pat = np.swapaxes(self.lp_patterns(traumatic), -1, -2)  # (S, K, 2, 4), contiguous
        lead = masks.shape[:-1]
        # one matrix-vector product over the flattened table (batched tiny matmuls and einsum are slower)
        prod = pat.reshape(-1, pat.shape[-1]) @ masks.reshape(-1, masks.shape[-1]).T  # (S*K*2, m)
        prod = np.moveaxis(prod.reshape(*pat.shape[:-1], -1), -1, 0).reshape(*lead, *pat.shape[:-1])
        with np.errstate(divide="ignore"):
            return np.log(prod)

    def level(self, item: str, level: str) -> np.ndarray:
        """Log P(level | component) of a tree item (S, K)."""
        return self.level_lp[:, :, self.st.level_index[(item, level)]]

    def by_cause(self, a: np.ndarray) -> np.ndarray:
        """Per-cause log mixture of per-component log probabilities (..., K) -> (..., C)."""
        # a cause of one component is that component (no log-sum-exp: most causes, every cause under independent)
        out = a[..., [idx[0] for idx in self.cause_components]]
        for j, idx in enumerate(self.cause_components):
            if len(idx) > 1:
                out[..., j] = _logsumexp_columns([a[..., k] for k in idx]) if len(idx) < 8 else logsumexp(a[..., idx])
        return out


def logsumexp(x: np.ndarray) -> np.ndarray:
    """Log-sum-exp over the last axis: the numbers of ``likelihood.NUMPY.logsumexp(x, axis=-1)``, bit for bit.

    The answer takes thousands of these over a few causes or components, where numpy's reductions spend
    most of their time on each short row: here the terms are laid out one after the other (one copy) and
    the largest term and the sum are taken a term at a time over whole arrays, in numpy's own order of
    summation: one after the other below eight terms, numpy's pairwise tree at eight (a C-contiguous
    array), numpy itself otherwise (tested against it).

    Parameters
    ----------
    x : ndarray (..., n)
        Log terms; -inf allowed.

    Returns
    -------
    ndarray (...)
        log sum exp x over the last axis.
    """
    n = x.shape[-1]
    if n == 0 or n > 8 or (n == 8 and not x.flags.c_contiguous):
        return LK.NUMPY.logsumexp(x, axis=-1)
    return _logsumexp_rows(np.moveaxis(x, -1, 0).copy())  # a copy: the terms one after the other


def _logsumexp_rows(rows: np.ndarray) -> np.ndarray:
    """:func:`logsumexp` of the terms ``rows`` (n, ...), n at most eight, C-contiguous and overwritten: each
    term a whole contiguous array (cheaper than columns of the terms' own array)."""
    top = np.array(rows[0])  # a copy (an array also for one set of terms)
    for r in rows[1:]:
        np.maximum(top, r, out=top)
    top[~np.isfinite(top)] = 0.0
    np.subtract(rows, top, out=rows)
    np.exp(rows, out=rows)
    if len(rows) == 8:  # numpy's pairwise tree (for a C-contiguous array; see logsumexp)
        total = ((rows[0] + rows[1]) + (rows[2] + rows[3])) + ((rows[4] + rows[5]) + (rows[6] + rows[7]))
    else:
        total = rows[0].copy()
        for r in rows[1:]:
            total += r
    with np.errstate(divide="ignore"):
        return top + np.log(total)


def _logsumexp_columns(cols: list[np.ndarray]) -> np.ndarray:
    """:func:`logsumexp` of fewer than eight terms given apart (the columns of the causes taken): the same numbers."""
    return _logsumexp_rows(np.stack(cols))


def softmax(lp: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, zero outside ``active`` causes."""
    lp = np.where(active, lp, -np.inf)
    return np.exp(lp - logsumexp(lp)[..., None])


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
        self.ctx_values = ctx_values
        self.ctx_terms = t.contexts_by_blasts(ctx_values)  # (codes, S, K, 2)
        self._summed_by_key: dict[int, np.ndarray] = {}  # see _summed
        methods = t.ix.methods
        self.lp_masks = [LP.obs_mask(dict(plist[i].lp.results), methods) for i in self.lps]
        # each LP's log-probability with and without circulating blasts (S, K, 2)
        self.lp_terms = [t.lp_logp(m, plist[i].lp.traumatic) for m, i in zip(self.lp_masks, self.lps, strict=True)]
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
            self.prof_marg = self.profile_marginal(LP.positive_mask(self.first_methods, methods), self.first_traumatic)
        self._full: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # see log_joint_full
        self._full_joint: np.ndarray | None = None
        self._full_by_term: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def profile_marginal(self, positive: np.ndarray, traumatic: str | None) -> np.ndarray:
        """Log P(profile | component, blasts) with the first LP's class marginalised: its class
        probability (from ``positive``, the patterns of a positive class) mixes the profile after a
        positive and after a negative LP (S, K, 2)."""
        p_pos = np.exp(self.t.lp_logp(positive, traumatic))
        return np.log(p_pos * np.exp(self.after_pos)[..., None] + (1 - p_pos) * np.exp(self.after_neg)[..., None])

    def _codes(self, masks: np.ndarray) -> np.ndarray:
        return sum(masks[..., i].astype(int) << j for j, i in enumerate(self.ctx)) if self.ctx \
            else np.zeros(masks.shape[:-1], int)

    def log_p_components(self, masks: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Log p(x_S, component | cause) + offset for boolean ``masks`` (m, n) or per draw (m, S, n);
        ``extra`` (S, K), or (S, K, 2) by blasts, adds a further result."""
        if masks.ndim == 3:
            return self._log_p_per_draw(masks, extra)
        t = self.t
        m = len(masks)
        if self.tree:
            a = np.einsum("mp,psk->msk", masks[:, self.tree].astype(float), self.tree_lp)
        else:
            a = np.zeros((m, t.n, len(t.component_cause)))
        if self.profile is not None and self.prof_joint is not None:
            both = masks[:, self.profile] & masks[:, self.lp1]
            a = a + np.where(both[:, None, None], self.prof_joint, 0.0)
        if extra is not None and extra.ndim == 2:
            a = a + extra
        # the part that depends on whether blasts circulate (context, LPs, a profile without its LP) is
        # summed over blasts once per distinct subset of those players, not once per subset of all
        blast_players = [*self.ctx, *self.lps]
        key = sum((masks[:, i].astype(np.int64) << j for j, i in enumerate(blast_players)), np.zeros(m, np.int64))
        if self.profile is not None:
            only = masks[:, self.profile].copy()
            if self.lp1 is not None:
                only &= ~masks[:, self.lp1]
            key = key | (only.astype(np.int64) << len(blast_players))
        distinct, back = np.unique(key, return_inverse=True)
        summed = np.empty((len(distinct), t.n, len(t.component_cause)))
        for u, k in enumerate(distinct):
            if extra is None or extra.ndim == 2:
                summed[u] = self._summed(int(k))
                continue
            code = sum(int(k >> j & 1) << j for j in range(len(self.ctx)))
            b = self.ctx_terms[code]
            for j in range(len(self.lps)):
                if k >> (len(self.ctx) + j) & 1:
                    b = b + self.lp_terms[j]
            if k >> len(blast_players) & 1:
                b = b + self.prof_marg
            if extra is not None and extra.ndim == 3:
                b = b + extra
            summed[u] = np.logaddexp(b[..., 0], b[..., 1])
        return a + summed[back.reshape(-1)] + self.offset

    def _summed(self, key: int) -> np.ndarray:
        """The blast-dependent players of ``key`` (bits: context, LPs, a profile without its LP, as
        :meth:`log_p_components` numbers them) summed over whether blasts circulate (S, K); kept per game (the
        contributions, the look-ahead and the atypicality check ask for the same subsets), and a context alone
        per Tables."""
        if key not in self._summed_by_key:
            n_ctx, n_lps = len(self.ctx), len(self.lps)
            code = key & ((1 << n_ctx) - 1)
            b = self.ctx_terms[code]
            lps = [j for j in range(n_lps) if key >> (n_ctx + j) & 1]
            profile = key >> (n_ctx + n_lps) & 1
            if not lps and not profile:
                out = self.t.context_summed(self.ctx_values[code], b)
            else:
                for j in lps:
                    b = b + self.lp_terms[j]
                if profile:
                    b = b + self.prof_marg
                out = np.logaddexp(b[..., 0], b[..., 1])
            self._summed_by_key[key] = out
        return self._summed_by_key[key]

    def log_p_context(self) -> np.ndarray:
        """Log P(every context finding known, component | cause) summed over whether blasts circulate (S, K),
        without the offset (the atypicality check conditions on it)."""
        return self._summed((1 << len(self.ctx)) - 1)

    def _log_p_per_draw(self, masks: np.ndarray, extra: np.ndarray | None) -> np.ndarray:
        """:meth:`log_p_components` for subsets that differ by draw (m, S, n): sampled Shapley orders."""
        m = len(masks)
        t = self.t
        draw = np.arange(t.n)
        if self.tree:
            a = np.einsum("msp,psk->msk", masks[..., self.tree].astype(float), self.tree_lp)
        else:
            a = np.zeros((m, t.n, len(t.component_cause)))
        b = self.ctx_terms[self._codes(masks), draw[None, :]]  # (m, S, K, 2)
        for j, i in enumerate(self.lps):
            b = b + np.where(masks[..., i][..., None, None], self.lp_terms[j], 0.0)
        if self.profile is not None:
            has_p = masks[..., self.profile]
            has_1 = masks[..., self.lp1] if self.lp1 is not None else np.zeros_like(has_p)
            b = b + np.where((has_p & ~has_1)[..., None, None], self.prof_marg, 0.0)
            if self.prof_joint is not None:
                a = a + np.where((has_p & has_1)[..., None], self.prof_joint, 0.0)
        if extra is not None:
            if extra.ndim == 3:
                b = b + extra
            else:
                a = a + extra
        return a + np.logaddexp(b[..., 0], b[..., 1]) + self.offset

    def log_joint(self, masks: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
        """Log P(c) + log p(x_S | c) per cause (m, S, C); ``extra`` (S, K) or (S, K, 2) adds a further result."""
        out = []
        for start in range(0, len(masks), CHUNK):
            a = self.log_p_components(masks[start:start + CHUNK], extra)
            out.append(self.base + self.t.by_cause(a))
        return np.concatenate(out) if out else np.zeros((0, self.t.n, len(self.t.causes)))

    def log_joint_full(self, extra: np.ndarray | None = None) -> np.ndarray:
        """``log_joint`` of every finding known (S, C), with ``extra`` (S, K) or (..., S, K, 2) added (a
        batch of further results by blasts gives (..., S, C)): the look-ahead asks it for every result of
        every next test, so the parts that do not depend on the result are summed once per game."""
        if self._full is None:
            t = self.t
            a = (np.einsum("psk->sk", self.tree_lp) if self.tree
                 else np.zeros((t.n, len(t.component_cause))))
            if self.profile is not None and self.prof_joint is not None:
                a = a + self.prof_joint
            b = self.ctx_terms[(1 << len(self.ctx)) - 1]  # every context player known
            for term in self.lp_terms:
                b = b + term
            if self.profile is not None and self.lp1 is None:
                b = b + self.prof_marg
            key = (1 << (len(self.ctx) + len(self.lps))) - 1  # every blast-dependent player
            if self.profile is not None and self.lp1 is None:
                key |= 1 << (len(self.ctx) + len(self.lps))
            self._full = (a + self.offset, b, self._summed(key))
            self._full_joint = self.base + self.t.by_cause(self._full[0] + self._full[2])
            self._full_joint.flags.writeable = False
        a, b, summed = self._full
        if extra is None:  # asked for by the look-ahead and the atypicality check
            return self._full_joint
        if not extra.flags.writeable:  # a kept result's term (Tables.lp_logp): asked for by the next tests and
            # again by the negative-LP curves; kept here with the term itself (so its id is not reused)
            kept = self._full_by_term.get(id(extra))
            if kept is None or kept[0] is not extra:
                kept = self._full_by_term[id(extra)] = (extra, self._log_joint_full(a, b, summed, extra))
            return kept[1]
        return self._log_joint_full(a, b, summed, extra)

    def _log_joint_full(self, a: np.ndarray, b: np.ndarray, summed: np.ndarray, extra: np.ndarray) -> np.ndarray:
        if extra.ndim >= 3:
            b = b + extra
            summed = np.logaddexp(b[..., 0], b[..., 1])
        else:  # a tree finding's result: blasts are summed over as without it
            a = a + extra
        return self.base + self.t.by_cause(a + summed)

    def log_odds(self, lj: np.ndarray) -> np.ndarray:
        """Log odds of infiltration against the other active causes (..., C) -> (...)."""
        weighed = self.active & (np.arange(len(self.active)) != self.inf)
        if len(weighed) >= 8:
            return lj[..., self.inf] - logsumexp(np.where(weighed, lj, -np.inf))
        # below eight causes numpy sums one after the other, so the causes not weighed (each adding an exact
        # zero) can be left out: the same numbers
        return lj[..., self.inf] - _logsumexp_columns([lj[..., j] for j in np.flatnonzero(weighed)])

    def value(self, masks: np.ndarray) -> np.ndarray:
        """Log odds of infiltration given each subset of findings (m, S).

        The same as ``log_odds(log_joint(masks))``, taken over components directly (infiltration's against
        the other weighed causes'), with one exponential shared by both sums.
        """
        t = self.t
        comp_active = self.active[t.component_cause]
        inf = np.flatnonzero(t.component_cause == self.inf)
        other = np.flatnonzero(comp_active & (t.component_cause != self.inf))
        comp_base = self.base[:, t.component_cause]  # (S, K)
        out = []
        for start in range(0, len(masks), CHUNK):
            x = self.log_p_components(masks[start:start + CHUNK]) + comp_base
            x[..., ~comp_active] = -np.inf
            top = x.max(axis=-1, keepdims=True)
            top = np.where(np.isfinite(top), top, 0.0)
            e = np.exp(x - top)
            num, den = e[..., inf].sum(axis=-1), e[..., other].sum(axis=-1)
            with np.errstate(divide="ignore"):
                v = np.log(num) - np.log(den)
            lost = (num == 0) | (den == 0)  # a side more than ~700 nats below the other: exact log-sum-exps
            if lost.any():
                exact = logsumexp(x[..., inf]) - logsumexp(x[..., other])
                v = np.where(lost, exact, v)
            out.append(v)
        return np.concatenate(out) if out else np.zeros((0, t.n))

    # -- what a further result adds (the look-ahead) ------------------------------------------------
    def lp_extra(self, results: dict[str, str], traumatic: str | None = None) -> np.ndarray:
        """The log-probability (S, K, 2) that a further LP with these ``results`` adds to every finding
        known, as the first LP when none is known (then its CSF profile's reading changes with it)."""
        t = self.t
        term = t.lp_logp(LP.obs_mask(results, t.ix.methods), traumatic)
        if self.first is None and self.profile is not None:  # the first LP of a known profile
            positive = any(r == "positive" for r in results.values())
            term = term + (self.after_pos if positive else self.after_neg)[..., None] - self.prof_marg
        return term
