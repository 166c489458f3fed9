"""The posterior cache: keys, atomic files, corruption detected and refitted with a warning."""

import numpy as np
import pytest

from model import cache as C
from model import fit

SMALL = C.Settings(draws=200, tune=200, chains=2, seed=5)


def test_key_depends_on_everything():
    base = C.key("h", "independent", SMALL)
    assert base != C.key("h2", "independent", SMALL)
    assert base != C.key("h", "subtype", SMALL)
    assert base != C.key("h", "independent", C.Settings(draws=201, tune=200, chains=2, seed=5))
    assert base == C.key("h", "independent", SMALL)


@pytest.mark.slow
def test_corrupt_or_truncated_cache_is_refitted_with_warning(fixture_evidence, tmp_path, monkeypatch):
    monkeypatch.setenv("PALSY_CACHE", str(tmp_path))
    first = fit.posterior("independent", fixture_evidence, SMALL)
    assert not first.from_cache
    again = fit.posterior("independent", fixture_evidence, SMALL)
    assert again.from_cache and np.array_equal(again.draws.params["theta"], first.draws.params["theta"])
    path = first.folder / "draws.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated
    with pytest.warns(UserWarning, match="corrupt"):
        refit = fit.posterior("independent", fixture_evidence, SMALL)
    assert not refit.from_cache
    path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])  # one flipped byte
    with pytest.warns(UserWarning, match="corrupt"):
        assert not fit.posterior("independent", fixture_evidence, SMALL).from_cache
    assert not list(first.folder.glob(".*.tmp"))  # no temporary files left behind


def test_netcdf_opens_with_arviz(posterior_independent):
    dt = posterior_independent.datatree()
    assert {"posterior", "sample_stats", "log_likelihood", "log_prior"} <= set(dt.children)
    from model import prior, rates

    # NUTS samples theta (and omega); the rate block is drawn from its prior beside them
    assert set(dt["log_prior"].data_vars) == set(dt["posterior"].data_vars) & set(prior.SAMPLED)
    assert set(rates.RATE_PARAMETERS) <= set(dt["posterior"].data_vars)
    assert dt["log_likelihood"]["cases"].shape[-1] == len(posterior_independent.draws.meta["case_ids"])


def test_fit_diagnostics_pass_the_bars(posterior_independent):
    d = posterior_independent.diagnostics
    assert d["r_hat_max"] <= 1.01 and d["ess_bulk_min"] >= 1000 and d["divergences"] == 0
