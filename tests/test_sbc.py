"""scripts/sbc.py: simulation-based calibration (weights 1; cohort counts and case findings simulated)."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_simulated_data_follow_the_sbc_rules(fixture_evidence):
    from palsy.model import design as D
    from palsy.model import prior
    from palsy.scripts import sbc

    v = fixture_evidence.variant("subtype")
    st = fixture_evidence.structure
    lib = sbc.pseudo_library(fixture_evidence, v)
    d = D.build(lib.evidence, v, weights_one=True)
    # one pseudo-case per (form, tree item, level), each observing exactly that level (the CSF profile's
    # items given the first LP's class among them; cases carry no LP result)
    assert len(d.case_ids) == len(lib.index) == len(v.infiltration_components) * st.n_levels
    assert np.all(d.obs_case.sum(axis=1) == 1) and np.all(d.case_forms.sum(axis=1) == 1)
    for (_, item, lv), j in lib.index.items():
        mask = d.obs_mask[np.flatnonzero(d.obs_case[j])[0]]
        assert [st.level_keys[i] for i in np.flatnonzero(mask)] == [(item, lv)]
    rng = np.random.default_rng(0)
    truth = prior.draws(d, 1, rng)
    data = sbc.simulate_data(d, truth, rng, lib)
    assert np.all(data["entry_w"] == 1)
    assert np.all((0 <= data["entry_x"]) & (data["entry_x"] <= data["entry_n"]))
    assert np.all(data["entry_x"] == np.round(data["entry_x"]))
    # the simulated library has as many findings as the real one observes (3 fixture cases)
    real = D.build(fixture_evidence, v)
    assert data["case_w"].sum() == real.obs_case.sum() == sum(len(s) for s in lib.slots)
    assert np.all(data["case_w"] == np.round(data["case_w"]))
    assert np.all(data["case_w"][d.obs_case.sum(axis=1) == 0] == 0)


def test_pseudo_library_likelihood_is_the_simulated_cases_likelihood(fixture_evidence):
    """sum_j count_j x log p(level_j | form) equals the log-likelihood of the cases with stated forms."""
    from palsy.model import design as D
    from palsy.model import likelihood as LK
    from palsy.model import prior
    from palsy.scripts import sbc

    v = fixture_evidence.variant("subtype")
    lib = sbc.pseudo_library(fixture_evidence, v)
    d = D.build(lib.evidence, v, weights_one=True)
    p = prior.draws(d, 3, np.random.default_rng(1))
    ll = np.asarray(LK.case_loglik(LK.NUMPY, p, d))  # (draw, pseudo-case)
    # a pseudo-case of form k at level l has log-likelihood log P(l | k) (through the selection model),
    # whatever omega
    st = fixture_evidence.structure
    lp = LK.level_logp(LK.NUMPY, LK.case_theta(LK.NUMPY, p, d), st)
    for (pos, item, lv), j in lib.index.items():
        k = v.infiltration_components[pos]
        np.testing.assert_allclose(ll[:, j], lp[:, k, st.level_index[(item, lv)]], rtol=1e-10)


def test_rank_statistics_detect_miscalibration():
    from palsy.scripts import sbc

    rng = np.random.default_rng(1)
    ok = sbc.summarise(rng.integers(0, 100, size=(200, 3)), ["a", "b", "c"], thin_to=99)
    assert ok["pooled"]["p_value"] > 0.001 and not ok["bonferroni_failures"]
    # an overconfident posterior puts the truth in the tails: U-shaped ranks
    bad_ranks = np.where(rng.random((200, 1)) < 0.5, rng.integers(0, 10, (200, 1)), rng.integers(90, 100, (200, 1)))
    bad = sbc.summarise(np.hstack([rng.integers(0, 100, size=(200, 1)), bad_ranks]), ["ok", "bad"], thin_to=99)
    assert bad["bonferroni_failures"] == ["bad"]
    assert [r["outside_ecdf_band"] for r in bad["per_parameter"]] == [False, True]


def pooled_fixture(fixture_evidence):
    """The fixture evidence with a second study of infiltration's P(bilateral): a pooled quantity, so
    that the model has random effects (tau, re_z) as well as the selection model (gamma)."""
    import dataclasses

    extra = [dataclasses.replace(e, id=e.id + "_second_study", x=4.0, n=12.0)
             for e in fixture_evidence.entries if e.id == "l_bilateral"]
    return dataclasses.replace(fixture_evidence, entries=(*fixture_evidence.entries, *extra),
                               hash=fixture_evidence.hash + ":pooled")


@pytest.mark.heavy  # make test-heavy: a fit or a lesson of a minute or more on 2 cores (make test's 10-minute budget)
@pytest.mark.slow
@pytest.mark.xdist_group("sbc")  # one worker builds the pseudo-library's model once for both tests
def test_reduced_sbc_ranks_are_roughly_uniform(tmp_path, fixture_evidence):
    """20 simulations (the reduced run; the suite's budget) of the model with random effects and case selection: cohort
    counts simulated with study effects, cases through the selection model; a loose chi-square bound."""
    from palsy.model import design as D
    from palsy.scripts import sbc

    ev = pooled_fixture(fixture_evidence)
    d = D.build(ev, ev.variant("independent"))
    assert d.re_groups and d.sel_mask.any()  # both parts of the synthesis are in the simulated model
    res = sbc.run(ev, "independent", 20, seed=11, scheduler="serial", **SBC_SETTINGS)
    assert len(res["ranks"]) == 20 and len(res["parameters"]) == len(res["ranks"][0])
    # the sampled parameters only: the free node parameters, the spread and study effects, the selection
    assert {p.partition("[")[0] for p in res["parameters"]} == {"theta_free", "tau", "re_z", "gamma"}
    assert any(" csf: " in p for p in res["parameters"])  # the CSF model's nodes (LP and node entries) too
    assert "gamma" in res["parameters"] and "tau" in res["parameters"]
    assert res["library"]["findings_per_simulation"] > 0
    r = np.array(res["ranks"])
    assert r.min() >= 0 and r.max() <= 19
    assert res["pooled"]["p_value"] > 1e-3
    assert len(res["bonferroni_failures"]) <= 1
    # no parameter piles up at one end (a sign-flipped or mis-indexed parameter would)
    means = r.mean(axis=0) / 19
    assert np.all((means > 0.2) & (means < 0.8)), dict(zip(res["parameters"], means.round(2), strict=True))
    paths = sbc.write(res, tmp_path)
    back = json.loads(paths[0].read_text())
    assert back["simulations"] == 20 and back["variant"] == "independent"
    assert paths[1].read_text().lstrip().startswith("<?xml") or "<svg" in paths[1].read_text()[:500]


SBC_SETTINGS = dict(draws=200, tune=200, chains=2, thin_to=19, bins=5)  # the reduced run's (one compiled sampler)


@pytest.mark.heavy  # make test-heavy: a fit or a lesson of a minute or more on 2 cores (make test's 10-minute budget)
@pytest.mark.slow
@pytest.mark.xdist_group("sbc")  # one worker builds the pseudo-library's model once for both tests
def test_heavy_checks_on_a_two_worker_cluster_match_the_serial_run(fixture_evidence):
    """The refits of palsy check and the simulations of scripts/sbc.py as Dask tasks on a two-worker
    LocalCluster give the serial run's results with the same seeds, to the last bit (issue 19 item 6).

    The cluster's two workers are threads of this process (the model already built is reused; the tasks
    still go through the scheduler to the two workers and back); with ``PALSY_TEST_DASK_PROCESSES=1`` they
    are worker processes, as a user's default LocalCluster (each then builds the model, about a minute)."""
    import os
    import pickle
    import time

    from dask.distributed import LocalCluster

    from palsy.model import cache as C
    from palsy.model import design as D
    from palsy.model.criticism import heavy
    from palsy.scripts import sbc

    ev = pooled_fixture(fixture_evidence)
    lib = sbc.pseudo_library(ev, ev.variant("independent"))
    d = D.build(lib.evidence, ev.variant("independent"), weights_one=True)
    settings = C.Settings(draws=SBC_SETTINGS["draws"], tune=SBC_SETTINGS["tune"], chains=2, seed=5)
    dropped = {k: np.array(v, float, copy=True) for k, v in d.data().items()}
    dropped["entry_w"][0] = 0.0  # a refit as palsy check makes them: one entry's weight set to 0
    calls = [((lib.evidence, "independent", settings, None), {"weights_one": True}),
             ((lib.evidence, "independent", settings, dropped), {"weights_one": True})]
    assert pickle.loads(pickle.dumps(calls))[0][0][0].hash == lib.evidence.hash  # a task's arguments travel
    kw = {k: v for k, v in SBC_SETTINGS.items()}
    t0 = time.perf_counter()
    serial = heavy.Runner(heavy.SERIAL).map(heavy.refit, calls)
    sbc_serial = sbc.run(ev, "independent", 2, seed=3, scheduler=heavy.SERIAL, **kw)
    t_serial = time.perf_counter() - t0
    processes = os.environ.get("PALSY_TEST_DASK_PROCESSES") == "1"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None) as cluster:
        t0 = time.perf_counter()
        with heavy.Runner(cluster.scheduler_address) as run:
            assert "2 worker" in run.describe
            on_dask = run.map(heavy.refit, calls)
        sbc_dask = sbc.run(ev, "independent", 2, seed=3, scheduler=cluster.scheduler_address, **kw)
        t_dask = time.perf_counter() - t0
    print(f"\nserial {t_serial:.1f} s, two-worker LocalCluster ({'processes' if processes else 'threads'}) {t_dask:.1f} s")
    for a, b in zip(serial, on_dask, strict=True):
        assert set(a["params"]) == set(b["params"])
        for k in a["params"]:
            np.testing.assert_array_equal(a["params"][k], b["params"][k])
        assert a["diagnostics"]["divergences"] == b["diagnostics"]["divergences"]
    assert not np.array_equal(serial[0]["params"]["theta_free"], serial[1]["params"]["theta_free"])
    assert sbc_serial["ranks"] == sbc_dask["ranks"] and sbc_serial["parameters"] == sbc_dask["parameters"]
    assert "Dask" in sbc_dask["runner"] and sbc_serial["runner"].startswith("serial")
