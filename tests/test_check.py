"""``palsy check``: the statistician's report (HTML with every section, numbers as JSON)."""

from __future__ import annotations

import json
from html import unescape
from html.parser import HTMLParser

import numpy as np
import pytest

from tests.conftest import REPO, run_palsy


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids, self.imgs, self.external = set(), [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for k in ("src", "href"):
            v = a.get(k) or ""
            if v.startswith(("http:", "https:", "//")):
                self.external.append(v)


def _fake_sbc(tmp_path):
    import numpy as np

    from palsy.scripts import sbc

    rng = np.random.default_rng(0)
    res = {"variant": "independent", "evidence_hash": "x" * 64, "simulations": 40, "what": "test",
           "settings": {"draws": 1, "tune": 1, "chains": 2, "seed": 1, "thin_to": 99, "bins": 10},
           "divergences": 0, "seconds": 0.0, "compile_seconds": 0.0,
           **sbc.summarise(rng.integers(0, 100, size=(40, 2)), ["theta_free[infiltration | a]", "omega[AML, perineural]"],
                            thin_to=99)}
    sbc.write(res, tmp_path / "sbc")
    return tmp_path / "sbc" / sbc.RESULTS


@pytest.mark.heavy  # make test-heavy: `palsy check --quick --no-refit` takes 90 s on 2 cores (make test's 10-minute budget)
@pytest.mark.slow
def test_check_report_has_every_section(tmp_path, posterior_independent, posterior_subtype, posterior_plain):
    from palsy.reports.check import SECTIONS

    sbc_file = _fake_sbc(tmp_path)
    # the report's every section, without refits (a new process would build the model for them, about a
    # minute): the refits of a quick run are tested in process (test_criticism: the one judgment at its
    # alternatives, the reference) and as Dask tasks (test_sbc); one hallmark vignette beside the patients
    import shutil

    vig = tmp_path / "vignettes"
    vig.mkdir()
    shutil.copy(REPO / "tests" / "fixtures" / "vignettes" / "gbs.yaml", vig)
    proc = run_palsy("check", "--quick", "--no-refit", "--vignettes", str(vig), "--out", str(tmp_path / "out"),
                     "--sbc", str(sbc_file))
    assert proc.returncode == 0, proc.stderr
    # --quick says what it left out and why
    assert "check --quick dropped" in proc.stdout and "rate factor screened out" in proc.stdout
    html = (tmp_path / "out" / "check.html").read_text()
    p = _Sections()
    p.feed(html)
    assert set(SECTIONS) <= p.ids
    assert not p.external
    assert p.imgs and all(s.startswith("data:image/") for s in p.imgs)
    assert any(s.startswith("data:image/svg+xml") for s in p.imgs)  # the SBC figure, inlined
    assert "prior-only by design" in html and "prior-only" in html
    assert "SBC was not run" not in html and "differs from the current evidence" in html
    data = json.loads((tmp_path / "out" / "check.json").read_text())
    assert set(data["variants"]) == {"independent", "subtype"}
    for v in data["variants"].values():
        assert v["diagnostics"]["ok"] in (True, False)
        assert len(v["ppc_posterior"]) == len(v["ppc_prior"]) > 20
        assert any(r["label"] == "prior-only by design" for r in v["psense"])
    assert {r["model"] for r in data["loo"]["compare"]} == {"independent", "subtype"}
    pats = data["sensitivity"]["patients"]
    assert {"source-000-vignette", "source-001", "source-002"} <= set(pats)
    assert len(pats) == 3 + 1  # and the hallmark vignette
    assert data["sensitivity"]["quick"] == [1, 1] and not data["sensitivity"]["refit"]
    assert data["runner"].startswith("serial")
    alternatives = set(data["sensitivity"]["alternatives"])
    assert alternatives == {"odds x2", "odds /2", "at its 5% point", "at its 95% point"}
    for rec in pats.values():
        assert rec["tornado"] and rec["w_case"] and rec["pretest"]
        assert 0 < rec["baseline"] < 1 and rec["leading_cause"] in data["causes"] and rec["mc_error"] > 0
        judged = [r for r in rec["sources"] if r["kind"] == "expert_judgment"]
        # no refit: every judgment row by PSIS (exact in expectation) and reliable, the others dropped
        assert judged and all(r["method"] == "PSIS" and r["reliable"] for r in judged)
        assert {r["alternative"] for r in judged} <= alternatives | {data["sensitivity"]["extreme"]}
        assert all(r["mc_error"] is not None and r["mc_error"] >= 0 for r in rec["sources"])
        assert not any(r["extreme"] for r in rec["tornado"])  # the flat swap is never a plausible alternative
        assert rec["dropped_total"] > 0 and rec["dropped"]
        assert any(r["kind"] == "rate_factor" and r["method"].startswith("exact") for r in rec["sources"])
        ps = rec["power_scaling"]
        assert np.isfinite(ps["prior"]["derivative"]) and np.isfinite(ps["likelihood"]["derivative"])
    # what each source patient's answer rests on: shares summing to 1, with a sentence
    ro = data["rests_on"]["patients"]
    assert set(ro) == {"source-000-vignette", "source-001", "source-002"}
    for rec in ro.values():
        assert sum(r["share"] for r in rec["rows"]) == pytest.approx(1.0)
        assert {r["kind"] for r in rec["rows"]} <= {"judgment", "data", "monte_carlo"}
        assert rec["sentence"] in unescape(html)  # the page escapes its words ("forms' weights": &#39;)
    # both variants side by side, with their stacking weights
    vc = data["variant_comparison"]
    assert set(vc["stacking_weights"]) == {"independent", "subtype"}
    assert sum(vc["stacking_weights"].values()) == pytest.approx(1.0)
    assert set(vc["patients"]) == set(pats)
    # every failing predictive check explained; the first LP's profile ordering measured, nothing dropped
    for v in data["variants"].values():
        assert all(r["explanation"] for r in v["ppc_posterior"] if r["p_value"] is not None and r["p_value"] < 0.05)
        assert all(r["explanation"] for r in v["cohorts"] if r["p_value"] < 0.05)
        assert v["dropped_draws"] == 0 and 0 <= v["lp_profile_ordering"]["holds_share"] <= 1
    # rate targets as the prior mass inside each cited range, with the tails
    assert all(r["p_in_range"] is not None for r in data["rates"]["shares"])
    assert "prior inside" in html
    # the reference table: incomplete citations flagged
    refs = data["references"]
    assert refs["rows"] and not refs["missing"]
    assert all(("citation incomplete: " in (r["flag"] or "")) == bool(r["incomplete"]) for r in refs["rows"])
    assert "citation incomplete:" in html
    # heterogeneity, selection and the validation split
    ind = data["variants"]["independent"]
    het = ind["heterogeneity"]
    assert het["pooled"] and het["quantities"] and het["loo"]
    assert all(r["explanation"] for r in het["loo"] if r["fails"])
    assert het["tau_posterior"]["median"] > 0 and het["tau_prior"]["median"] > 0
    sel = ind["selection"]
    assert sel["modelled"] and sel["bilateral"]["with"] and sel["bilateral"]["without"]
    assert all("without_selection" in f for f in sel["features"])
    assert data["validation"]["too_small"] and data["validation"]["n"] >= 1
    assert "too few to judge" in html and "code check" in html.lower()
    assert "Bilateral palsy" in html and "HalfNormal" in html
    # cohort entries name their cause; the rate model's implied quantities sit beside their targets
    assert {r["cause"] for r in data["variants"]["subtype"]["cohorts"]} <= set(data["causes"])
    rates = data["rates"]
    assert len(rates["cumulative"]) == 8 and len(rates["shares"]) == len(data["causes"])
    assert all(r["target"] for r in rates["shares"])
    assert "What the rate model implies" in html and "share among new palsies" in html.lower()


def test_sbc_section_says_when_not_run(tmp_path):
    from palsy.reports.check import _sbc

    assert _sbc(tmp_path / "missing.json")["run"] is False


def test_check_rejects_bad_input(tmp_path):
    proc = run_palsy("check", "--variants", "nonsense", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "nonsense" in proc.stderr and "allowed" in proc.stderr
    assert not (tmp_path / "check.html").exists()


@pytest.mark.slow  # the session's fits
def test_the_check_report_renders_every_section_from_a_run_without_refits(tmp_path, evidence, posterior_independent,
                                                                         posterior_plain):
    """``make test``'s reading of the statistician's report (the whole ``palsy check`` run is heavy): every number
    computed for one variant and one source patient without refits, written as the command writes it; every
    section there, nothing loaded from outside the page, every figure inline, the numbers as JSON."""
    from palsy.model import criticism
    from palsy.model.criticism import heavy
    from palsy.reports import check as report
    from palsy.reports.check import SECTIONS

    pats = criticism.load_patients(REPO / "patients")[1:2]  # source 001
    with heavy.runner("serial") as run_:
        res = criticism.run_all(evidence, {"independent": posterior_independent.draws}, pats, refit=False,
                                plain=posterior_plain.draws, quick=(1, 1), loo_refits=0, prior_n=500,
                                validation_path=REPO / "priors" / "validation.yaml", runner=run_,
                                source_patients=[p.id for p in pats])
    html_path, json_path = report.write(res, tmp_path / "out", sbc_path=tmp_path / "no-sbc.json")
    html = html_path.read_text()
    p = _Sections()
    p.feed(html)
    assert set(SECTIONS) <= p.ids
    assert not p.external
    assert p.imgs and all(s.startswith("data:image/") for s in p.imgs)
    assert "SBC was not run" in html and "citation incomplete:" in html
    text = unescape(html)
    data = json.loads(json_path.read_text())
    assert set(data["variants"]) == {"independent"} and data["evidence_hash"] == evidence.hash
    rec = data["sensitivity"]["patients"]["source-001"]
    assert 0 < rec["baseline"] < 1 and rec["tornado"] and rec["leading_cause"] in data["causes"]
    ro = data["rests_on"]["patients"]["source-001"]
    assert sum(r["share"] for r in ro["rows"]) == pytest.approx(1.0) and ro["sentence"] in text
    assert all(r["p_in_range"] is not None for r in data["rates"]["shares"])
