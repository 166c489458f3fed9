"""The compiled sampler's layout (design.for_sampler): the same likelihood as the design it comes from,
shapes that an added case keeps, so that an edit of priors/ changes the sampler's data and not its program;
and one JAX device per chain."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml

from palsy.model import cache as C
from palsy.model import design as D
from palsy.model import likelihood as LK
from palsy.model import prior
from tests.conftest import REPO


def _padded_with_data(d: D.Design) -> D.Design:
    pd = D.for_sampler(d)
    data = D.sampler_data(d, pd, d.data())
    return dataclasses.replace(pd, **{k: data[k] for k in ("entry_x", "entry_n", "entry_w")})


@pytest.mark.parametrize("variant", ["independent", "subtype"])
@pytest.mark.parametrize("synthesis", [True, False])
@pytest.mark.parametrize("n_cases", [0, 1, 7, 16, None])
def test_the_layout_keeps_every_likelihood_term(evidence, variant, synthesis, n_cases):
    """Each real entry and case has the log-likelihood it has in the design (random parameters from the
    prior); every padded entry and case adds exactly nothing."""
    ev = dataclasses.replace(evidence, cases=evidence.cases[:n_cases])
    d = D.build(ev, ev.variant(variant), synthesis=synthesis)
    pd = _padded_with_data(d)
    p = prior.draws(d, 40, np.random.default_rng(n_cases or 3))
    e, c = len(d.entry_ids), len(d.case_ids)
    entries, padded_entries = LK.entry_loglik(LK.NUMPY, p, d), LK.entry_loglik(LK.NUMPY, p, pd)
    np.testing.assert_allclose(padded_entries[:, :e], entries, rtol=1e-12, atol=1e-12)
    assert np.all(padded_entries[:, e:] == 0)
    if c:
        cases, padded_cases = LK.case_loglik(LK.NUMPY, p, d), LK.case_loglik(LK.NUMPY, p, pd)
        np.testing.assert_allclose(padded_cases[:, :c], cases, rtol=1e-12, atol=1e-12)
        assert np.all(np.abs(padded_cases[:, c:]) < 1e-12)
    # the observations are merged into their distinct masks, counted per case
    assert pd.obs_case.sum() == d.obs_case.sum()
    assert len(pd.obs_mask) == D.padded_size(len(np.unique(d.obs_mask, axis=0)))
    assert (len(pd.entry_ids), len(pd.case_ids)) == (D.padded_size(e), D.padded_size(c))
    assert D.sampler_data(d, pd, d.data())["case_w"][c:].sum() == 0


def test_padded_sizes_leave_room():
    assert [D.padded_size(n) for n in (0, 1, 2, 3, 43, 63, 64, 65)] == [0, 2, 4, 4, 64, 64, 128, 128]


def _with_a_case_added(folder):
    shutil.copytree(REPO / "priors", folder)
    data = yaml.safe_load((folder / "cases.yaml").read_text())
    added = {**data["cases"][3], "id": "test_added_case"}
    added.pop("also_known_as", None)
    data["cases"].append(added)
    (folder / "cases.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


_PROGRAM = """
import json, sys
import numpy as np
from palsy.model import design as D, evidence, nuts
out = {}
for label, folder in (("original", sys.argv[1]), ("edited", sys.argv[2])):
    ev = evidence.load(folder)
    d = D.build(ev, ev.variant("subtype"))
    pd = D.for_sampler(d)
    m = nuts.jax_model(("subtype", ev.hash, True), pd)
    import jax
    values = {**D.sampler_data(d, pd, d.data()), **pd.layout()}
    dat = [np.asarray(values[n], dtype=t) for n, (_, t) in m.data.items()]
    x = [a[0] for a in m.initial(np.random.default_rng(0), 1)]
    text = jax.jit(m.logp).lower(x, dat).as_text(debug_info=False)
    out[label] = {"cases": len(d.case_ids), "program": text, "data": [a.tolist() for a in dat],
                  "devices": jax.local_device_count()}
print(json.dumps(out))
"""


@pytest.mark.slow
def test_an_added_case_changes_the_samplers_data_not_its_program(tmp_path):
    """The log density JAX compiles is the same program after a case is added (so JAX's compilation
    cache serves the refit); only its data differ. Building the model asks JAX for one CPU device per
    chain of the default settings (PyMC's import asks for 100, which samples far slower)."""
    edited = _with_a_case_added(tmp_path / "priors")
    proc = subprocess.run([sys.executable, "-c", _PROGRAM, str(REPO / "priors"), str(edited)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    original, after = out["original"], out["edited"]
    assert after["cases"] == original["cases"] + 1
    assert after["program"] == original["program"]
    assert after["data"] != original["data"]
    assert original["devices"] == C.Settings().chains
