"""The conjugate posterior against MCMC (independent variant): every theta within 4 Monte Carlo
standard errors of its exact Beta posterior; the rate block is exact prior draws."""

import numpy as np
import pytest

from palsy.model import design as D
from palsy.model import exact
from palsy.model import structure as S


@pytest.fixture(scope="module")
def exact_post(evidence):
    return exact.posterior(evidence)


@pytest.mark.slow
def test_mcmc_matches_conjugate_posterior(posterior_plain, exact_post):
    import arviz as az

    dt = posterior_plain.datatree()
    post = dt["posterior"].to_dataset()
    mcse = az.mcse(post[["theta"]], method="mean")
    th = post["theta"].values.reshape(-1, *post["theta"].shape[2:])
    assert th.shape[1:] == exact_post.a.shape
    z = (th.mean(0) - exact_post.theta_mean) / mcse["theta"].values
    assert np.abs(z).max() < 4, z
    # and the spread: the posterior sd within 10% of the exact one
    np.testing.assert_allclose(th.std(0), exact_post.theta_sd, rtol=0.1)


@pytest.mark.slow
def test_rate_block_is_drawn_from_its_prior(draws_independent):
    """No likelihood informs the rate block: its draws are its prior's (means within 4 standard errors)."""
    r = draws_independent.rate_arrays
    p = draws_independent.params
    n = draws_independent.n
    alpha = r.lineage_alpha
    mean = alpha / alpha.sum()
    sd = np.sqrt(mean * (1 - mean) / (alpha.sum() + 1))
    assert np.all(np.abs(p["share_lineage"].mean(0) - mean) < 4 * sd / np.sqrt(n))
    a, b = r.beta_a, r.beta_b
    m = a / (a + b)
    sd = np.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    assert np.all(np.abs(p["rate_beta"].mean(0) - m) < 4 * sd / np.sqrt(n))
    log_ln = np.log(p["rate_lognormal"])
    assert np.all(np.abs(log_ln.mean(0) - r.lognormal_mu) < 4 * r.lognormal_sigma / np.sqrt(n))
    np.testing.assert_allclose(log_ln.std(0), r.lognormal_sigma, rtol=0.1)


def test_conjugate_counts_by_hand(fixture_evidence):
    """The fixture (causes infiltration, bell, zoster, vincristine; w_case 0.5) counted by hand."""
    d = D.build(fixture_evidence, fixture_evidence.variant("independent"), synthesis=False)
    assert d.variant.components == ("infiltration", "bell", "zoster", "vincristine")
    inf, bell, zos, vin = range(4)
    a, b = exact.node_counts(d)

    lat = S.find_node("laterality", ("bilateral",), S.ITEMS["laterality"])
    # bell: Beta(1,1) + 0.8 x (8 of 1000); infiltration: Beta(1,1) + 1 x (1 of 10) + 0.5 x (case_a
    # bilateral; case_b and case_c unilateral); zoster and vincristine: no data on laterality
    assert (a[bell, lat], b[bell, lat]) == (pytest.approx(1 + 0.8 * 8), pytest.approx(1 + 0.8 * 992))
    assert (a[inf, lat], b[inf, lat]) == (pytest.approx(1 + 1 + 0.5), pytest.approx(1 + 9 + 0.5 * 2))
    assert (a[zos, lat], b[zos, lat]) == (1, 1) and (a[vin, lat], b[vin, lat]) == (1, 1)

    cyto = S.find_node("csf_cytology", ("positive",), ("negative", "positive"))
    # the form entries (leptomeningeal 30/51, perineural 2/5) speak for infiltration as a whole in the
    # independent variant. Cases do not inform CSF sensitivity (DESIGN §3: the LP that proved a case is
    # left out, so only negative LPs would remain); where a design still reads them: case_b's CSF proved
    # it (left out), case_a negative cytology, case_c negative with the method unknown -> cytology
    cases_read_lps = bool(d.obs_mask[:, [S.LEVEL_INDEX[("csf_cytology", r)] for r in ("negative", "positive")]].any())
    assert a[inf, cyto] == pytest.approx(1 + 0.5 * 30 + 0.5 * 2)
    assert b[inf, cyto] == pytest.approx(1 + 0.5 * 21 + 0.5 * 3 + (0.5 * 2 if cases_read_lps else 0))
    assert (a[bell, cyto], b[bell, cyto]) == (pytest.approx(1 + 0.5 * 1), pytest.approx(1 + 0.5 * 65))

    mass = S.find_node("mri", ("mass",), ("multiple_nerve_or_leptomeningeal", "mass"))
    beyond = S.find_node("mri", ("multiple_nerve_or_leptomeningeal", "mass"), S.ITEMS["mri"])
    assert (a[bell, mass], b[bell, mass]) == (1, 9)  # expert judgment replaces the base prior
    assert (a[bell, beyond], b[bell, beyond]) == (1, 49)
    # the myeloid-sarcoma judgment is about a form: not used by the independent variant; case_c's
    # MRI (a mass, proven by biopsy) counts; case_a's (proven by MRI) does not; case_b's normal MRI
    # counts against "beyond the facial nerve"
    assert (a[inf, mass], b[inf, mass]) == (pytest.approx(1 + 0.5), 1)
    assert a[inf, beyond] == pytest.approx(1 + 0.5 * 11 + 0.5) and b[inf, beyond] == pytest.approx(1 + 0.5 * 9 + 0.5)

    # the mimics' own entries
    ves = S.find_node("vesicles", ("present",), S.ITEMS["vesicles"])
    assert (a[zos, ves], b[zos, ves]) == (pytest.approx(1 + 0.5 * 12), pytest.approx(1 + 0.5 * 8))
    prof = S.find_node("csf_profile_negative", ("protein_only", "pleocytosis"), S.ITEMS["csf_profile_negative"])
    assert (a[zos, prof], b[zos, prof]) == (pytest.approx(1 + 0.5 * 17), pytest.approx(1 + 0.5 * 3))
    pn = S.find_node("peripheral_nerves", ("one_or_more",), S.ITEMS["peripheral_nerves"])
    assert (a[vin, pn], b[vin, pn]) == (8, 2)
    # case_c's peripheral nerve involvement under infiltration (proven by biopsy: counts)
    assert (a[inf, pn], b[inf, pn]) == (pytest.approx(1 + 0.5), 1)


def test_conjugate_posterior_scales_with_w_case(fixture_evidence):
    """Doubling w_case doubles every case's contribution and leaves the entries alone."""
    e1, e2 = exact.posterior(fixture_evidence, w_case=0.5), exact.posterior(fixture_evidence, w_case=1.0)
    d0 = D.build(fixture_evidence, fixture_evidence.variant("independent"), w_case=0.0, synthesis=False)
    a0, b0 = exact.node_counts(d0)
    np.testing.assert_allclose(e2.a - a0, 2 * (e1.a - a0))
    np.testing.assert_allclose(e2.b - b0, 2 * (e1.b - b0))
