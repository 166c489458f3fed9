"""The posterior cache: keys, atomic files, corruption detected and refitted with a warning."""

from pathlib import Path

import numpy as np
import pytest

from palsy.model import cache as C
from palsy.model import fit

SMALL = C.Settings(draws=200, tune=200, chains=2, seed=5)


def test_key_depends_on_everything():
    base = C.key("h", "independent", SMALL)
    assert base != C.key("h2", "independent", SMALL)
    assert base != C.key("h", "subtype", SMALL)
    assert base != C.key("h", "independent", C.Settings(draws=201, tune=200, chains=2, seed=5))
    assert base == C.key("h", "independent", SMALL)


@pytest.mark.heavy  # make test-heavy: a fit or a lesson of a minute or more on 2 cores (make test's 10-minute budget)
@pytest.mark.slow
@pytest.mark.xdist_group("fixture_fit")  # one worker compiles this model once
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
    from palsy.model import prior, rates

    # NUTS samples theta (and omega); the rate block is drawn from its prior beside them
    assert set(dt["log_prior"].data_vars) == set(dt["posterior"].data_vars) & set(prior.SAMPLED)
    assert set(rates.rate_parameters(posterior_independent.draws.schema.context)) <= set(dt["posterior"].data_vars)
    assert dt["log_likelihood"]["cases"].shape[-1] == len(posterior_independent.draws.meta["case_ids"])


def test_fit_diagnostics_pass_the_bars(posterior_independent):
    d = posterior_independent.diagnostics
    assert d["r_hat_max"] <= 1.01 and d["ess_bulk_min"] >= 1000 and d["divergences"] == 0


def test_concurrent_requests_for_one_fit_fit_it_once(fixture_evidence, tmp_path, monkeypatch):
    """Two requests for the same entry at once: one fits, the other waits on the entry's lock and then reads
    the cache (a test run on two workers, two terminals). The sampler is replaced by a slow stand-in."""
    import threading
    import time

    monkeypatch.setenv("PALSY_CACHE", str(tmp_path))
    store: dict = {}
    calls: list[str] = []

    def slow_fit(variant, evidence, settings, folder, *rest):
        calls.append(variant)
        time.sleep(0.5)
        store[folder] = fit.Posterior(None, folder, False, 0.5)
        return store[folder]

    monkeypatch.setattr(fit, "_fit", slow_fit)
    monkeypatch.setattr(fit, "_cached", lambda folder, quiet=False, remove=False: store.get(folder) and
                        fit.Posterior(None, folder, True, 0.0))
    got = []
    threads = [threading.Thread(target=lambda: got.append(fit.posterior("independent", fixture_evidence)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["independent"], calls
    assert sorted(p.from_cache for p in got) == [False, True, True]
    # another entry is not held up by this one's lock
    other = fit.posterior("subtype", fixture_evidence)
    assert calls == ["independent", "subtype"] and not other.from_cache


def test_another_process_holding_the_entry_lock_makes_this_one_wait(tmp_path):
    """The entry's lock (filelock) between processes: while another process fits an entry, a request for it
    waits, and gets it as soon as the other is done; another entry is not held up."""
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    folder = tmp_path / "independent-abc"
    code = ("import sys, time; from pathlib import Path; from palsy.model import cache as C\n"
            "with C.fitting(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(1.5)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    t = time.monotonic()
    with C.fitting(tmp_path / "subtype-abc"):  # another entry: at once
        assert time.monotonic() - t < 1.0
    with C.fitting(folder):
        waited = time.monotonic() - t
        assert holder.poll() is not None or waited > 1.0  # the holder released it (by ending) before this got it
    assert waited > 0.5, waited
    assert holder.wait(timeout=30) == 0


def test_cache_folder_is_the_platforms_unless_palsy_cache_says(monkeypatch, tmp_path):
    """PALSY_CACHE wins; otherwise the folder platformdirs gives (on Linux the same XDG rule without importing
    it, for every way XDG_CACHE_HOME and HOME can be set)."""
    import platformdirs

    monkeypatch.delenv("PALSY_CACHE", raising=False)
    for xdg, home in ((None, str(tmp_path / "home")), (str(tmp_path / "xdg"), str(tmp_path / "home")),
                      ("relative/xdg", str(tmp_path / "home")), ("", str(tmp_path / "home")), (None, "relative-home")):
        for name, value in (("XDG_CACHE_HOME", xdg), ("HOME", home)):
            monkeypatch.delenv(name, raising=False) if value is None else monkeypatch.setenv(name, value)
        assert C.root() == Path(platformdirs.user_cache_dir("palsy", appauthor=False)), (xdg, home)
    monkeypatch.setenv("PALSY_CACHE", str(tmp_path))
    assert C.root() == tmp_path


def test_rate_tables_stored_with_the_draws_are_the_computed_ones_and_never_stale(posterior_subtype):
    """draws.npz carries the rate model's tables (a query reads them instead of computing them); they are
    exactly what computing gives, and a copy of the draws with other parameters or rates computes its own."""
    import dataclasses

    from palsy.model import draws as draws_io
    from palsy.model import game
    from palsy.model import likelihood as LK

    d = draws_io.load(posterior_subtype.folder / "draws.npz")
    stored = d.stored_strata()
    assert stored is not None
    for a, b in zip(stored, LK.strata_tables(d.params, d.rate_arrays), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert game.Tables(d).p_sk is stored[1]  # read, not computed again
    assert not any(a.flags.writeable for a in stored)  # shared by every Tables of these draws
    # other rates: the copy's tables are its own (doubling every rate factor moves P(cause))
    params = {**d.params, "rate_lognormal": d.params["rate_lognormal"] * 2.0}
    for copy in (dataclasses.replace(d, params=params), draws_io.Draws(params, d.meta, d.case_loglik, d.rates)):
        assert copy.stored_strata() is None
        t = game.Tables(copy)
        assert not np.array_equal(t.log_prior, stored[0])
        assert np.array_equal(t.log_prior, LK.strata_tables(params, d.rate_arrays)[0])
    assert dataclasses.replace(d, rates=dict(d.rates)).stored_strata() is None
    assert d.subset(np.arange(10)).stored_strata() is None
