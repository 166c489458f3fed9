"""The answer path's shortcuts give the numbers of the straightforward computation, bit for bit: the context
terms kept per Tables, the column-wise log-sum-exp, the quantiles from a partial sort."""

import itertools

import numpy as np
import pytest

from palsy.model import answer as A
from palsy.model import findings as F
from palsy.model import game as GM
from palsy.model import likelihood as LK
from palsy.model import summaries as SU


@pytest.fixture(scope="module")
def tables(draws_subtype):
    return A.Tables(draws_subtype)


def _contexts(t: A.Tables, n: int, seed: int) -> list[dict[str, str | None]]:
    levels = {f: [None, *t.schema.levels[f]] for f in t.schema.context}
    every = list(itertools.product(*levels.values()))
    pick = np.random.default_rng(seed).choice(len(every), n, replace=False)
    return [dict(zip(levels, every[i], strict=True)) for i in pick]


def _direct_contexts(t: A.Tables, many: list[dict[str, str | None]]) -> np.ndarray:
    """The context terms as one matrix product over every context asked (the computation before the cache)."""
    masks = np.stack([t.st.stratum_mask(v)[None, :] * t.blasts_masks for v in many])
    n = t.p_sk.shape[-1]
    prod = (t.p_sk.reshape(-1, n) @ masks.reshape(-1, n).T).reshape(*t.p_sk.shape[:2], len(many), 2)
    with np.errstate(divide="ignore"):
        return np.log(np.moveaxis(prod, 2, 0))


def test_context_terms_kept_are_those_computed(tables):
    t = tables
    many = _contexts(t, 24, 0)
    want = _direct_contexts(t, many)
    assert np.array_equal(t.contexts_by_blasts(many[:5]), want[:5])  # first seen
    assert np.array_equal(t.contexts_by_blasts(many), want)  # some kept, some new
    assert np.array_equal(t.contexts_by_blasts(many[::-1]), want[::-1])  # every one kept
    assert np.array_equal(t.contexts_by_blasts([many[3], many[3]]), want[[3, 3]])


def test_context_terms_bounded_and_renewed(tables, monkeypatch):
    t = A.Tables(tables.draws)
    monkeypatch.setattr(GM, "CONTEXT_CACHE", 4)
    many = _contexts(t, 10, 1)
    assert np.array_equal(t.contexts_by_blasts(many), _direct_contexts(t, many))  # more than are kept at once
    assert len(t._contexts[1]) == 4
    t.p_sk = t.p_sk * 2.0  # another table: nothing kept from the one before
    assert np.array_equal(t.contexts_by_blasts(many[-2:]), _direct_contexts(t, many[-2:]))


@pytest.mark.parametrize("n", range(1, 12))
def test_logsumexp_is_numpys(n):
    rng = np.random.default_rng(n)
    for shape in [(), (1,), (7,), (4000,), (3, 500), (2, 3, 50)]:
        x = rng.normal(size=(*shape, n)) * 40
        x[rng.random(x.shape) < 0.25] = -np.inf
        if x.ndim > 1:
            x[0] = -np.inf  # a row with no finite term
        cases = [x, np.swapaxes(np.ascontiguousarray(np.swapaxes(x, 0, -1)), 0, -1), x[..., ::-1]]
        if x.ndim > 1 and x.shape[0] > 2:
            y = x.copy()
            y[1, ..., 0] = np.inf
            y[2, ..., -1] = np.nan
            cases.append(y)
        for c in cases:
            with np.errstate(invalid="ignore"):
                assert np.array_equal(GM.logsumexp(c), LK.NUMPY.logsumexp(c, axis=-1), equal_nan=True)


@pytest.mark.parametrize("n", [1, 2, 3, 10, 3999, 4000])
def test_quantiles_are_numpys(n):
    rng = np.random.default_rng(n)
    levels = [[0.05, 0.5, 0.95], [(1 - 0.9) / 2, 0.5, (1 + 0.9) / 2], [(1 - 0.8) / 2, 0.5, (1 + 0.8) / 2], [0.0, 1.0],
              [0.5], list(rng.random(7)), [0, 1]]
    for shape in [(n,), (3, n), (2, 2, n)]:
        for q in levels:
            for _ in range(4):
                x = rng.normal(size=shape) * rng.choice([1e-3, 1.0, 1e5])
                for bad in (np.nan, -np.inf, np.inf):
                    if rng.random() < 0.3:
                        x[..., rng.integers(n)] = bad
                if rng.random() < 0.2:
                    x = np.round(x)  # ties
                with np.errstate(invalid="ignore"):
                    want = np.quantile(x, q, axis=-1)
                    got = SU.quantiles(x, q)
                assert got.shape == want.shape and np.array_equal(got, want, equal_nan=True)


def test_lp_terms_kept_are_those_computed(tables):
    t = A.Tables(tables.draws)
    eye = np.eye(4)
    for traumatic in (None, "no", "yes"):
        for mask in (eye[2], eye[1] + eye[3], np.ones(4)):
            first = t.lp_logp(mask, traumatic)
            assert t.lp_logp(mask, traumatic) is first and not first.flags.writeable
            assert np.array_equal(first, t.lp_logp(mask[None], traumatic)[0])  # a batch of one: computed, not kept


def test_derived_renewed_with_the_parameters(tables):
    t = A.Tables(tables.draws)
    calls = []
    make = lambda: calls.append(1) or np.arange(3.0)  # noqa: E731
    assert t.derived("x", make) is t.derived("x", make) and len(calls) == 1
    before = t.lp_logp(np.eye(4)[0], None)
    t.theta = t.theta.copy()  # tables copied with other draws (rests_on's hybrids) give other node parameters
    t.derived("x", make)
    assert len(calls) == 2 and t.lp_logp(np.eye(4)[0], None) is not before


def test_by_cause_and_log_odds_are_the_straightforward_ones(tables):
    t = tables
    rng = np.random.default_rng(3)
    a = rng.normal(size=(3, t.n, len(t.component_cause))) * 5
    a[0, :10] = -np.inf
    want = np.stack([a[..., idx[0]] if len(idx) == 1 else LK.NUMPY.logsumexp(a[..., idx], axis=-1)
                     for idx in t.cause_components], axis=-1)
    assert np.array_equal(t.by_cause(a), want)
    p = F.parse_patient({"lineage": "B-ALL", "csf": ["negative:cytology"]}, schema=t.schema)
    inf = t.causes.index(A.INFILTRATION)
    for active in (np.ones(len(t.causes), bool), np.arange(len(t.causes)) < 3, np.arange(len(t.causes)) % 2 == 0):
        game = GM.Game(t, GM.players(p), p, active, t.log_prior, np.zeros_like(t.level_lp[:, :, 0]))
        lj = game.log_joint_full()
        others = active & (np.arange(len(t.causes)) != inf)
        assert np.array_equal(game.log_odds(lj), lj[..., inf] - LK.NUMPY.logsumexp(np.where(others, lj, -np.inf), axis=-1))


def test_context_sums_kept_are_those_computed(tables):
    t = A.Tables(tables.draws)
    many = _contexts(t, 3, 2)
    terms = t.contexts_by_blasts(many)
    for values, term in zip(many, terms, strict=True):
        kept = t.context_summed(values, term)
        assert np.array_equal(kept, np.logaddexp(term[..., 0], term[..., 1])) and t.context_summed(values, term) is kept
        other = term + 1.0  # not the kept term (a stub's, rests_on's): computed, not taken from what is kept
        assert np.array_equal(t.context_summed(values, other), np.logaddexp(other[..., 0], other[..., 1]))


def test_negative_curves_a_step_at_a_time_are_the_batch(tables):
    from palsy.model import lookahead as LA
    from palsy.model import lp as LP

    t = tables
    sc = t.schema
    for data in ({"lineage": "T-ALL", "csf": ["negative:cytology"]}, {"lineage": "AML", "csf_profile": "pleocytosis"},
                 {"lineage": "B-ALL", "csf": ["negative:flow"] * (sc.lp.max_lps - 1)}):
        p = F.parse_patient(data, schema=sc)
        game = GM.Game(t, GM.players(p), p, np.ones(len(t.causes), bool), t.log_prior, np.zeros_like(t.level_lp[:, :, 0]))
        got = LA.negative_curves(game, p, None)
        for key, methods in LA.method_sets(sc.lp.methods).items():  # all further LPs in one batch, as before
            negative = {m: sc.lp.results[0] for m in methods}
            more = np.arange(sc.lp.max_lps - len(p.csf))[:, None, None, None]
            batch = game.log_joint_full(game.lp_extra(negative) + more * t.lp_logp(LP.obs_mask(negative, t.ix.methods), None))
            want = np.average(GM.softmax(batch, game.active)[..., game.inf], axis=-1)
            assert got[key] == [float(x) for x in want]
            steps = LA.negative_steps(game, p, None)[key]
            assert [next(steps) for _ in want[:1]] == [float(x) for x in want[:1]]  # read one at a time
