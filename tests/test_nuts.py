"""The NUTS backends (model/nuts.py): refits reuse the compiled sampler and take their data; the nutpie
route samples the same posterior; the sampler setting is checked."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from palsy.model import cache as C
from tests.conftest import run_palsy

SMALL = C.Settings(draws=300, tune=300, chains=2, seed=21, synthesis=False)


def test_sampler_setting_is_checked():
    with pytest.raises(ValueError, match=r"sampler 'stan' is not allowed; allowed: blackjax, nutpie"):
        C.Settings(sampler="stan")
    assert C.Settings().sampler == C.SAMPLERS[0] == "blackjax"
    assert C.key("h", "independent", C.Settings()) != C.key("h", "independent", C.Settings(sampler="nutpie"))


def test_bad_sampler_flag_exits_2(tmp_path):
    proc = run_palsy("fit", "--sampler", "stan", env={"PALSY_CACHE": str(tmp_path)})
    assert proc.returncode == 2
    assert "--sampler" in proc.stderr and "'stan'" in proc.stderr and "blackjax" in proc.stderr
    assert "Traceback" not in proc.stderr and not any(tmp_path.iterdir())


def test_missing_nutpie_is_a_clear_message(fixture_evidence, monkeypatch):
    from palsy.model import design as D
    from palsy.model import fit, nuts

    monkeypatch.setitem(sys.modules, "nutpie", None)  # an import of it now fails
    key = ("independent", "not-compiled", False)
    with pytest.raises(ValueError, match=r"nutpie.*not installed.*\.\[nutpie\].*blackjax"):
        nuts.nutpie_model(key, D.build(fixture_evidence, fixture_evidence.variant("independent")))
    with pytest.raises(ValueError, match="not installed"):
        fit.sample("independent", fixture_evidence, dataclasses.replace(SMALL, sampler="nutpie"))


@pytest.mark.heavy  # make test-heavy: a fit or a lesson of a minute or more on 2 cores (make test's 10-minute budget)
@pytest.mark.slow
@pytest.mark.xdist_group("fixture_fit")
def test_refit_reuses_the_compiled_sampler_and_takes_its_data(fixture_evidence):
    """A refit with other data compiles nothing new, moves the posterior the way the data say, and a
    refit with the original data reproduces the first fit exactly (no data left over from the refit)."""
    from palsy.model import design as D
    from palsy.model import fit, nuts

    d = D.build(fixture_evidence, fixture_evidence.variant("independent"), synthesis=False)
    first, _ = fit.sample("independent", fixture_evidence, SMALL)
    m = nuts._MODELS[("independent", fixture_evidence.hash, False)]
    compiled = [(SMALL.chains, SMALL.tune, -(-SMALL.draws // nuts.DRAW_CALLS), SMALL.thin)]
    assert list(m.runs) == compiled
    # 200 more prior successes on every node: every node probability rises
    dt, d2 = fit.sample("independent", fixture_evidence, SMALL, data={"prior_a": d.prior_a + 200.0})
    assert list(m.runs) == compiled  # nothing recompiled
    assert np.array_equal(d2.prior_a, d.prior_a + 200.0)
    before = fit.flat_params(first)["theta"].mean(axis=0)
    after = fit.flat_params(dt)["theta"].mean(axis=0)
    free = (before > 0) & (before < 1)  # a structural zero (a node a component cannot reach) stays zero
    assert free.any() and np.all(after[free] > before[free]) and np.array_equal(after[~free], before[~free])
    with pytest.raises(ValueError, match=r"refit data 'prior_a' has shape \(3,\); the compiled model takes"):
        fit.sample("independent", fixture_evidence, SMALL, data={"prior_a": np.ones(3)})
    with pytest.raises(ValueError, match=r"refit data 'obs_mask' is not data of the model; allowed: entry_x"):
        fit.sample("independent", fixture_evidence, SMALL, data={"obs_mask": np.ones(3)})
    again, _ = fit.sample("independent", fixture_evidence, SMALL)
    assert np.array_equal(fit.flat_params(again)["theta"], fit.flat_params(first)["theta"])
    assert fit.diagnostics(first)["divergences"] == 0


@pytest.mark.heavy
def test_nutpie_route_samples_the_same_posterior(fixture_evidence):
    """Both backends sample one PyMC model: on the plain configuration their posterior means of every node
    probability agree within Monte Carlo error. Heavy (``make test-heavy``): numba builds the nutpie model
    in minutes on 2 cores, longer than the rest of the suite's budget allows; the default sampler is checked
    against the closed form in every ``make test`` (tests/test_exact.py)."""
    pytest.importorskip("nutpie")
    from palsy.model import fit

    settings = dataclasses.replace(SMALL, draws=500, tune=500)
    a = fit.flat_params(fit.sample("independent", fixture_evidence, settings)[0])["theta"]
    b = fit.flat_params(fit.sample("independent", fixture_evidence,
                                   dataclasses.replace(settings, sampler="nutpie"))[0])["theta"]
    se = np.sqrt((a.var(axis=0) + b.var(axis=0)) / 250)  # ESS of about a quarter of the 1,000 draws, at worst
    assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) < 4.5 * se + 1e-3)


@pytest.mark.heavy  # make test-heavy: a fit or a lesson of a minute or more on 2 cores (make test's 10-minute budget)
@pytest.mark.slow
@pytest.mark.xdist_group("fixture_fit")
def test_a_fit_says_how_far_it_has_got(fixture_evidence):
    """The draws are made in chunks, each reported when done, in order, up to every draw; the chunks join
    into one chain of exactly the draws asked for (also when they do not divide evenly)."""
    from palsy.model import fit, nuts

    settings = dataclasses.replace(SMALL, draws=301)
    messages: list[str] = []
    dt, _ = fit.sample("independent", fixture_evidence, settings, progress=messages.append)
    made = [m for m in messages if m.endswith("draws per chain made")]
    assert f"{settings.tune} tuning steps per chain done" in messages
    assert messages.index(f"{settings.tune} tuning steps per chain done") < messages.index(made[0])
    counts = [int(m.split()[0]) for m in made]
    assert len(counts) == nuts.DRAW_CALLS and counts == sorted(counts) and counts[-1] == 301
    assert all(m.split()[2] == "301" for m in made)
    assert dt["posterior"].dataset.sizes["draw"] == 301 and dt["sample_stats"].dataset.sizes["draw"] == 301
    # the same fit without a listener gives the same draws (waiting for each chunk changes nothing)
    quiet, _ = fit.sample("independent", fixture_evidence, settings)
    assert np.array_equal(fit.flat_params(quiet)["theta"], fit.flat_params(dt)["theta"])


def test_thinning_setting_is_checked_and_keyed(tmp_path):
    with pytest.raises(ValueError, match=r"thin 0 is not allowed; allowed: a whole number >= 1"):
        C.Settings(thin=0)
    assert C.Settings().thin == 2
    assert C.key("h", "subtype", C.Settings()) != C.key("h", "subtype", C.Settings(thin=1))
    proc = run_palsy("fit", "--thin", "0", env={"PALSY_CACHE": str(tmp_path)})
    assert proc.returncode == 2 and "--thin" in proc.stderr and "Traceback" not in proc.stderr
    assert not any(tmp_path.iterdir())


def test_thinned_keeps_the_last_transition_of_each_window_and_every_divergence():
    """nutpie's thinning (the JAX backend thins inside its compiled draws the same way): draw k is transition
    (k + 1) x thin - 1, and a divergence in a transition not kept is its draw's, never dropped."""
    import xarray as xr

    from palsy.model import nuts

    x = np.arange(2 * 7, dtype=float).reshape(2, 7)  # 2 chains x 7 transitions: the last is left over
    div = np.zeros((2, 7), bool)
    div[0, 2] = True  # a transition thinned away, in draw 1's window (transitions 2, 3)
    div[1, 5] = True  # a kept transition (draw 2 of chain 1)
    dt = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"theta": (("chain", "draw"), x)}, coords={"chain": [0, 1], "draw": np.arange(7)}),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"), div), "energy": (("chain", "draw"), -x)},
                                   coords={"chain": [0, 1], "draw": np.arange(7)})})
    out = nuts.thinned(dt, 2)
    assert out["posterior"]["theta"].values.tolist() == [[1, 3, 5], [8, 10, 12]]
    assert out["posterior"]["theta"].coords["draw"].values.tolist() == [0, 1, 2]
    assert out["sample_stats"]["diverging"].values.tolist() == [[False, True, False], [False, False, True]]
    # every transition's energy kept, the leftover one dropped; no thinned 'energy' to mislead an E-BFMI
    assert "energy" not in out["sample_stats"]
    assert out["sample_stats"]["energy_transitions"].values.tolist() == [
        [[-0, -1], [-2, -3], [-4, -5]], [[-7, -8], [-9, -10], [-11, -12]]]
    from palsy.model import fit

    whole = nuts.thinned(xr.DataTree.from_dict({"sample_stats": dt["sample_stats"].dataset.isel(draw=slice(0, 6))}), 1)
    assert fit.e_bfmi(out) == fit.e_bfmi(whole)
    # E-BFMI by its formula: sum of squared steps over the sum of squared deviations (energies -x: steps of 1)
    assert fit.e_bfmi(whole)[0] == pytest.approx(5 / np.sum((np.arange(6) - 2.5) ** 2))
    assert nuts.thinned(dt, 1) is dt


@pytest.mark.slow  # two small fits of the fixture evidence (about 10 s with JAX's compilation cache warm)
@pytest.mark.xdist_group("fixture_fit")
def test_a_thinned_fit_keeps_every_second_transition_of_the_same_chain(fixture_evidence):
    """With the same seed, a fit of n draws thinned by 2 makes the same transitions as a fit of 2n draws
    kept whole (the same keys per chunk), and keeps every second one: the JAX backend's thinning is exact."""
    from palsy.model import fit

    whole, _ = fit.sample("independent", fixture_evidence, dataclasses.replace(SMALL, draws=600, thin=1))
    thin, _ = fit.sample("independent", fixture_evidence, dataclasses.replace(SMALL, draws=300, thin=2))
    a, b = fit.flat_params(whole)["theta"], fit.flat_params(thin)["theta"]
    assert thin["posterior"].dataset.sizes["draw"] == 300
    per_chain_a = a.reshape(SMALL.chains, 600, -1)
    per_chain_b = b.reshape(SMALL.chains, 300, -1)
    assert np.array_equal(per_chain_b, per_chain_a[:, 1::2])
    div_a = whole["sample_stats"]["diverging"].values.reshape(SMALL.chains, 300, 2).any(axis=-1)
    assert np.array_equal(thin["sample_stats"]["diverging"].values, div_a)
    # the E-BFMI is the whole chain's: every transition's energy is kept
    assert fit.e_bfmi(thin) == pytest.approx(fit.e_bfmi(whole), rel=1e-12)
    assert fit.diagnostics(thin)["e_bfmi_min"] == pytest.approx(min(fit.e_bfmi(whole)), rel=1e-12)
