"""The conjugate posterior against MCMC: every scalar within 4 Monte Carlo standard errors."""

import numpy as np
import pytest

from model import design as D
from model import exact, variants


@pytest.fixture(scope="module")
def exact_post(evidence):
    return exact.posterior(evidence)


@pytest.mark.slow
def test_mcmc_matches_conjugate_posterior(posterior_independent, exact_post):
    import arviz as az

    dt = posterior_independent.datatree()
    post = dt["posterior"].to_dataset()
    mcse = az.mcse(post, method="mean")
    th = post["theta"].values.reshape(-1, *post["theta"].shape[2:])
    z = (th.mean(0) - exact_post.theta_mean) / mcse["theta"].values
    assert np.abs(z).max() < 4, z
    for name in ("lineage_share", "remission_share", "relapse_hazard", "remission_multiplier", "p_facial", "bell_incidence"):
        m, se = exact_post.pretest_mean(name)
        x = post[name].values
        x = x.reshape(-1, *x.shape[2:]).mean(0)
        z = (x - m) / np.sqrt(mcse[name].values ** 2 + se ** 2)
        assert np.abs(z).max() < 4, (name, z)


def test_conjugate_counts_by_hand(fixture_evidence):
    d = D.build(fixture_evidence, variants.get("independent", fixture_evidence.forms))
    a, b = exact.node_counts(d)
    from model import structure as S

    lat = S.find_node("laterality", ("bilateral",), S.ITEMS["laterality"])
    # B: Beta(1,1) + 0.8 x (8 of 1000); L: Beta(1,1) + 1 x (1 of 10) + 0.5 x (case_a bilateral,
    # case_b and case_c unilateral)
    assert a[1, lat] == pytest.approx(1 + 0.8 * 8) and b[1, lat] == pytest.approx(1 + 0.8 * 992)
    assert a[0, lat] == pytest.approx(1 + 1 + 0.5) and b[0, lat] == pytest.approx(1 + 9 + 0.5 * 2)
    cyto = S.find_node("csf_cytology", ("positive",), ("negative", "positive"))
    # case_b's CSF proved it (left out); case_a negative cytology, case_c negative unknown method -> cytology
    assert b[0, cyto] == pytest.approx(1 + 0.5 * 3 + 0.5 * 21 + 0.5 * 2)
    ej = S.find_node("mri", ("mass",), ("multiple_nerve_or_leptomeningeal", "mass"))
    assert (a[1, ej], b[1, ej]) == (1, 9)  # expert judgment replaces the base prior
