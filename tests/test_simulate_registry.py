"""scripts/simulate_registry.py (issue 23 item 3): the coverage and width bookkeeping on hand-made cases whose
answers are known (fast), and the script's smallest run end to end (slow: one small NUTS fit with a registry)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from palsy.scripts import simulate_registry as SR


def fake(rows: int, sites: int, rep: int, causes: dict[str, tuple[bool, float]],
         patients: dict[str, tuple[bool, float]]) -> dict:
    """A record as the script writes one: (covered, width) per cause and per patient (both readings), each
    interval centred on 0.5."""
    def iv(cov: bool, w: float) -> dict:
        return {"truth": 0.5, "mean": 0.5, "lower": 0.5 - w / 2, "upper": 0.5 + w / 2, "covered": cov, "width": w}

    return {"rows": rows, "sites": sites, "rep": rep, "seconds": 2.0,
            "diagnostics": {"r_hat_max": 1.01, "ess_bulk_min": 150.0, "divergences": 1},
            "causes": {c: iv(*v) for c, v in causes.items()},
            "patients": {p: {r: iv(*v) for r in SR.READINGS} for p, v in patients.items()}}


def test_coverage_and_width_bookkeeping_by_hand(tmp_path):
    """Intervals, coverage, its Monte Carlo errors and the per-cell summaries on cases worked by hand."""
    assert SR.interval(np.arange(101) / 100) == pytest.approx((0.05, 0.95))
    c = SR.check(0.3, 0.4, 0.2, 0.6)
    assert c["covered"] and c["width"] == pytest.approx(0.4)
    assert SR.check(0.2, 0.4, 0.2, 0.6)["covered"] and SR.check(0.6, 0.4, 0.2, 0.6)["covered"]  # the ends count
    assert not SR.check(0.61, 0.4, 0.2, 0.6)["covered"] and not SR.check(0.19, 0.4, 0.2, 0.6)["covered"]
    with pytest.raises(ValueError, match="lower end"):
        SR.check(0.5, 0.5, 0.6, 0.4)

    cov = SR.coverage([True, True, False, True])
    assert cov["coverage"] == 0.75 and cov["covered"] == 3 and cov["n"] == 4
    assert cov["se"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4)) and cov["se_nominal"] == pytest.approx(0.15)
    # two fits of two intervals, [hit, hit] and [miss, hit]: residuals 2 - 1.5 and 1 - 1.5, so the between-fit
    # error is sqrt(0.5^2 + 0.5^2) / 4 x sqrt(2 / 1) = 0.25, above the binomial 0.2165
    cl = SR.coverage([True, True, False, True], clusters=[[50, 1, 0], [50, 1, 0], [50, 1, 1], [50, 1, 1]])
    assert cl["fits"] == 2 and cl["se"] == pytest.approx(0.25)
    # intervals that agree within each fit add no between-fit error beyond the binomial one
    assert SR.coverage([True, True, True, True], clusters=["a", "a", "b", "b"])["se"] == 0.0
    assert SR.coverage([])["coverage"] is None

    records = [fake(0, 1, 0, {"infiltration": (True, 0.6), "bell": (True, 0.5)}, {"p1": (True, 0.7)}),
               fake(0, 1, 1, {"infiltration": (False, 0.6), "bell": (True, 0.5)}, {"p1": (True, 0.7)}),
               fake(50, 1, 0, {"infiltration": (True, 0.2), "bell": (False, 0.1)}, {"p1": (False, 0.3)}),
               fake(50, 1, 1, {"infiltration": (True, 0.4), "bell": (True, 0.3)}, {"p1": (True, 0.5)})]
    s = SR.summarise(records, rows=[0, 50], sites=[1, 5])
    assert set(s["cells"]) == {"0x1", "0x5", "50x1", "50x5"} and s["cells"]["50x5"]["fits"] == 0
    cell = s["cells"]["50x1"]
    assert cell["fits"] == 2 and cell["divergences"] == 2 and cell["seconds"] == 4.0
    assert cell["widths"]["base_rate"] == {"mean": pytest.approx(0.3), "min": 0.2, "max": 0.4, "n": 2}
    assert cell["widths"]["p1:answer"]["mean"] == pytest.approx(0.4)
    # in log odds: 2 logit(0.6) and 2 logit(0.7)
    assert cell["widths"]["base_rate:log_odds"]["mean"] == pytest.approx(math.log(1.5) + math.log(7 / 3))
    assert SR.log_odds_width({"lower": 0.2, "upper": 0.8}) == pytest.approx(2 * math.log(4))
    assert math.isfinite(SR.log_odds_width({"lower": 0.0, "upper": 1.0}))
    assert cell["coverage"]["cause"]["coverage"] == 0.75 and cell["coverage"]["answer"]["coverage"] == 0.5
    reg, no = s["pooled"]["registry"], s["pooled"]["no_registry"]
    assert reg["fits"] == no["fits"] == 2
    assert reg["by_quantity"]["bell"]["coverage"] == 0.5 and reg["by_quantity"]["infiltration"]["coverage"] == 1.0
    assert no["by_quantity"]["infiltration"]["coverage"] == 0.5 and no["by_kind"]["same_setting"]["coverage"] == 1.0

    results = {"variant": "subtype", "grid": {"rows": [0, 50], "sites": [1, 5]}, "patients": ["p1"],
               "settings": {"chains": 2, "draws": 10, "tune": 10}, "simulations": 4, "registry_fits": 2,
               "seconds": 60.0, "runner": "serial (this process)", "records": records, **s}
    text = SR.table(results)
    assert "| 50 | 1 | 2 | 0.300 | 0.400 |" in text and "| 50 | 5 | 0 | - | - |" in text
    assert f"| 50 | 1 | 2 | {math.log(1.5) + math.log(7 / 3):.2f} |" in text  # the log-odds table
    assert "| cause shares | 75% +- " in text and "(3/4)" in text
    SR.figure(results, tmp_path / "w.svg")
    assert (tmp_path / "w.svg").read_text().lstrip().startswith("<?xml")


def test_a_fits_intervals_are_read_against_the_truth(evidence):
    """``record`` on a posterior of 40 prior draws and truths among them: a truth at the draws' median of a
    quantity is covered, one at their minimum is not, and each width is the draws' 5-95% quantile range."""
    from palsy.model import api, fit
    from palsy.model import design as D
    from palsy.model import draws as DW
    from palsy.model import prior as P
    from palsy.model import registry_fit as RF

    d = D.build(evidence, evidence.variant("independent"))
    p = P.draws(d, 40, np.random.default_rng(3))
    meta = {"variant": "independent", "components": list(d.variant.components),
            "component_causes": list(d.variant.component_causes), "causes": list(d.variant.causes),
            "schema": evidence.schema.to_json(), "answer_settings": fit.answer_settings(evidence),
            "evidence_hash": evidence.hash, "version": "test", "settings": {"seed": 1},
            "diagnostics": {"ok": True}, "case_ids": [], "case_aliases": []}
    posterior = DW.Draws({**p, "theta_new": p["theta"]}, meta, np.zeros((0, 40)), DW.rate_arrays_to_dict(d.rates))
    patient = api.as_patient(REPO / "patients" / "source-001.yaml", posterior.schema)
    shares = RF.cause_shares(posterior.params, posterior.rate_arrays)
    p_inf = SR.p_infiltration(patient, posterior)
    inf = evidence.causes.index("infiltration")
    rank_share, rank_p = np.argsort(np.argsort(shares[:, inf])), np.argsort(np.argsort(p_inf))
    middle = int(np.flatnonzero((abs(rank_share - 19.5) < 8) & (abs(rank_p - 19.5) < 8))[0])
    lowest = int(np.argmin(shares[:, inf]))
    s_lo, s_hi = np.quantile(shares[:, inf], [0.05, 0.95])
    p_lo, p_hi = np.quantile(p_inf, [0.05, 0.95])
    for index, covered in ((middle, True), (lowest, False)):
        rec = SR.record(SR.truth_draws(posterior, index), posterior, {"p": patient}, evidence.causes)
        got = rec["causes"]["infiltration"]
        assert got["covered"] is covered and got["truth"] == pytest.approx(shares[index, inf], rel=1e-12)
        assert got["width"] == pytest.approx(s_hi - s_lo) and got["mean"] == pytest.approx(shares[:, inf].mean())
        assert set(rec["causes"]) == set(evidence.causes)
        for reading in SR.READINGS:  # theta_new is theta here: both readings agree
            got = rec["patients"]["p"][reading]
            assert got["truth"] == pytest.approx(p_inf[index], rel=1e-9) and got["width"] == pytest.approx(p_hi - p_lo)
            assert got["covered"] is (True if index == middle else bool(p_lo <= p_inf[index] <= p_hi))


@pytest.mark.heavy  # a registry fit compiles its own model: 1-2.5 minutes on 2 cores, over make test's budget
def test_the_smallest_run_writes_every_cell(posterior_subtype, tmp_path):
    """``python scripts/simulate_registry.py --quick`` (run as a file: scripts/palsy.py must not hide the
    package): exit 0, and the JSON holds every cell of the grid with finite positive widths and coverages in
    [0, 1]; the figure and the tables are written."""
    out = tmp_path / "sim"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "simulate_registry.py"), "--quick", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / SR.RESULTS).read_text())
    assert (out / SR.FIGURE).stat().st_size > 0 and "| rows | sites |" in (out / SR.TABLE).read_text()
    rows, sites = list(SR.QUICK["rows"]), list(SR.QUICK["sites"])
    assert res["grid"]["rows"] == rows and res["grid"]["sites"] == sites and res["registry_fits"] >= 1
    assert set(res["cells"]) == {f"{r}x{s}" for r in rows for s in sites}
    for cell in res["cells"].values():
        assert cell["fits"] >= 1
        widths = [w[k] for w in cell["widths"].values() for k in ("mean", "min", "max")]
        # the base rate and each patient's two readings, each in probability and in log odds
        assert len(widths) == 3 * 2 * (1 + 2 * len(res["patients"])) and all(math.isfinite(w) and w > 0 for w in widths)
        for c in cell["coverage"].values():
            assert c["n"] > 0 and 0 <= c["coverage"] <= 1
    for r in res["records"]:
        assert set(r["causes"]) == set(res["causes"]) and len(r["patients"]) == 3
        assert all(0 <= v["truth"] <= 1 and v["lower"] <= v["upper"] for v in r["causes"].values())
    assert "coverage of the 90% intervals" in proc.stdout
