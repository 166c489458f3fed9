"""The teaching lesson's numbers (model/teach.py), its pages (reports/teaching.py) and ``palsy teach``."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from palsy.model import answer as A
from palsy.model import findings as F
from palsy.model import structure as S
from palsy.model import teach as T
from tests.conftest import PATIENTS, REPO, run_palsy

CI = 0.9


@pytest.fixture(scope="module")
def tables_independent(draws_independent):
    return A.Tables(draws_independent)


@pytest.fixture(scope="module")
def tables_subtype(draws_subtype):
    return A.Tables(draws_subtype)


@pytest.fixture(params=["independent", "subtype"])
def variant_tables(request, tables_independent, tables_subtype):
    return {"independent": tables_independent, "subtype": tables_subtype}[request.param]


@pytest.fixture(params=["independent", "subtype"])
def variant_draws_tables(request, draws_independent, draws_subtype, tables_independent, tables_subtype):
    return {"independent": (draws_independent, tables_independent),
            "subtype": (draws_subtype, tables_subtype)}[request.param]


def _lps(*codes: str) -> tuple[F.LP, ...]:
    return tuple(F.LP(*c.split(":")) for c in codes)


# --- the lesson's numbers ------------------------------------------------------------------------

def _typical(**changes) -> F.Patient:
    return T.TYPICAL.replace(**changes)


@pytest.mark.parametrize("method", F.CSF_METHODS)
def test_posttest_monotone_in_pretest(variant_tables, method):
    cur = T.posttest_curves(variant_tables, ci=CI, max_k=3)
    assert np.all(np.diff(cur["pretest"]) > 0)
    for b in cur["curves"][method]:
        for key in ("mean", "median", "lower", "upper"):
            assert np.all(np.diff(b[key]) >= -1e-12), key
        assert np.all(b["lower"] <= b["median"]) and np.all(b["median"] <= b["upper"])
        assert np.all((b["mean"] > 0) & (b["mean"] < 1))


@pytest.mark.parametrize("method", F.CSF_METHODS)
def test_negative_lp_never_raises_the_probability(variant_tables, method):
    """After each further negative LP (up to 6) the mean and the median are never higher than before."""
    cur = T.posttest_curves(variant_tables, ci=CI, max_k=F.MAX_LPS)
    for key in ("mean", "median"):
        arr = np.stack([b[key] for b in cur["curves"][method]])  # (k, pretest)
        assert np.all(np.diff(arr, axis=0) <= 1e-12), key
    k0 = cur["curves"][method][0]
    assert np.allclose(k0["mean"], cur["pretest"]) and np.allclose(k0["median"], cur["pretest"])


@pytest.mark.parametrize("method", F.CSF_METHODS)
def test_negative_lp_lowers_the_odds_in_every_draw(variant_tables, method):
    assert np.all(T.posttest_log_odds(variant_tables, np.array([0.3]), method, 1)
                  < T.posttest_log_odds(variant_tables, np.array([0.3]), method, 0))


@pytest.mark.parametrize("method", F.CSF_METHODS)
def test_curves_agree_with_the_answer(draws_subtype, tables_subtype, method):
    """The lesson's post-test numbers are what ``answer`` (the CLI) gives for the same pretest and context."""
    p = _typical(laterality=None, other_cranial_nerves=None, csf=_lps(f"negative:{method}", f"negative:{method}"))
    ans = A.answer(p, draws_subtype, ci=CI, pretest=0.3, tables=tables_subtype)
    cur = T.posttest_curves(tables_subtype, pretests=np.array([0.3]), ci=CI, max_k=2)
    got = {k: float(v[0]) for k, v in cur["curves"][method][2].items()}
    for key in ("mean", "median", "lower", "upper"):
        assert got[key] == pytest.approx(ans.probability[key], abs=1e-12)


@pytest.mark.parametrize("method", F.CSF_METHODS)
def test_where_it_goes_agrees_with_the_answer(variant_draws_tables, method):
    """Every cause's probability after k negative LPs is the answer's, and what infiltration loses
    goes to the whole differential (the gains sum to one; Bell's palsy takes only part of it)."""
    draws, variant_tables = variant_draws_tables
    w = T.where_it_goes(variant_tables, method=method, ci=CI)
    for k in (0, 2):
        ans = A.answer(_typical(csf=_lps(*[f"negative:{method}"] * k)), draws, ci=CI, tables=variant_tables)
        for c in ans.cause_summaries():
            assert w["steps"][k]["causes"][c["cause"]]["mean"] == pytest.approx(c["probability"]["mean"], abs=1e-12)
        assert w["steps"][k]["infiltration"]["mean"] == pytest.approx(ans.probability["mean"], abs=1e-12)
    means = [s["causes"]["infiltration"]["mean"] for s in w["steps"]]
    assert all(np.diff(means) < 0)
    for g in w["gain"]:
        assert sum(g.values()) == pytest.approx(1.0, abs=1e-9)
        assert "infiltration" not in g and 0 < g["bell"] < 1
        assert sum(v for c, v in g.items() if c != "bell") > 0.05  # not only Bell's palsy


def test_fall_below(tables_independent):
    rows = T.lps_to_fall_below(tables_independent, ci=CI)
    assert {r["method"] for r in rows} == set(F.CSF_METHODS)
    for r in rows:
        after = r["after"]
        assert len(after) == F.MAX_LPS + 1
        if r["by_mean"] is not None:
            assert after[r["by_mean"]]["mean"] < r["threshold"]
            assert all(a["mean"] >= r["threshold"] for a in after[:r["by_mean"]])
        else:
            assert all(a["mean"] >= r["threshold"] for a in after)
        if r["by_upper"] is not None:
            assert r["by_mean"] is not None and r["by_mean"] <= r["by_upper"]
    # a higher pretest never needs fewer LPs
    for m in F.CSF_METHODS:
        for thr in T.THRESHOLDS:
            ks = [r["by_mean"] for r in rows if r["method"] == m and r["threshold"] == thr]
            ks = [F.MAX_LPS + 1 if k is None else k for k in ks]
            assert ks == sorted(ks)


@pytest.mark.parametrize("method", F.CSF_METHODS)
def test_subtype_repeat_lps(tables_subtype, method):
    """Within infiltration each further negative LP is less surprising (forms); against the other
    causes the model's factor after k negative LPs is less extreme than the naive power."""
    rep = T.repeat_lps(tables_subtype, method=method, ci=CI)
    within, naive = rep["draws_within"], rep["draws_within_naive"]
    # per draw: P(neg, neg | infiltration) >= P(neg | infiltration)^2 (Jensen over the forms)
    assert np.all(within >= naive - 1e-9)
    assert np.median(within[-1] - naive[-1]) > 0.01
    assert rep["conditional"][1]["mean"] > rep["conditional"][0]["mean"]
    assert rep["joint"][-1]["mean"] > rep["naive"][-1]["mean"] + 0.1


@pytest.mark.parametrize("method", F.CSF_METHODS)
def test_independent_repeat_within_equals_naive(tables_independent, method):
    rep = T.repeat_lps(tables_independent, method=method, ci=CI)
    np.testing.assert_allclose(rep["draws_within"], rep["draws_within_naive"], atol=1e-9)


def test_negative_lp_shifts_infiltration_towards_perineural(tables_subtype, draws_subtype):
    shift = T.form_shift(tables_subtype, draws_subtype, ci=CI)
    lepto = [s["forms"]["leptomeningeal"]["mean"] for s in shift]
    peri = [s["forms"]["perineural"]["mean"] for s in shift]
    assert all(np.diff(lepto) < 0) and all(np.diff(peri) > 0)
    for s in shift:
        assert math.isclose(sum(v["mean"] for v in s["forms"].values()), 1.0, rel_tol=1e-9)


@pytest.mark.parametrize("method", F.CSF_METHODS)
def test_frequency_tree_adds_up(variant_tables, method):
    tree = T.frequency_tree(variant_tables, pretest=0.3, method=method, ci=CI)
    c = {k: v["mean"] for k, v in tree["counts"].items()}
    assert c["L"] == pytest.approx(300) and c["L"] + c["O"] == pytest.approx(1000)
    assert c["L_neg1"] + c["L_pos1"] == pytest.approx(c["L"])
    assert c["O_neg1"] + c["O_pos1"] == pytest.approx(c["O"])
    assert c["L_neg2"] + c["L_neg1_pos2"] == pytest.approx(c["L_neg1"])
    assert c["O_neg2"] + c["O_neg1_pos2"] == pytest.approx(c["O_neg1"])
    by = tree["by_cause"]
    assert sum(by[x]["neg2"]["mean"] for x in tree["causes"] if x != "infiltration") == pytest.approx(c["O_neg2"])
    assert sum(by[x]["all"]["mean"] for x in tree["causes"]) == pytest.approx(1000)
    s = tree["share_l"]
    assert s["neg1"]["tree"] == pytest.approx(c["L_neg1"] / (c["L_neg1"] + c["O_neg1"]))
    assert s["neg2"]["mean"] < s["neg1"]["mean"] < 0.3
    assert s["neg2"]["lower"] > 0  # less likely, never impossible


def test_other_findings_compared(tables_subtype):
    rows = {(r["finding"], r["value"]): r for r in T.single_findings(tables_subtype, ci=CI)}
    n_levels = sum(1 for item, _ in S.LEVEL_KEYS if not item.startswith("csf_profile_")) + 3
    assert len(rows) == n_levels
    neg = rows[("csf", "negative:cytology")]["log_lr"]["mean"]
    assert rows[("csf", "positive:cytology")]["log_lr"]["mean"] > 0 > neg
    assert rows[("csf", "positive:flow")]["leading"] == "infiltration"
    assert rows[("vesicles", "present")]["leading"] == "zoster"
    assert rows[("mri", "mass")]["log_lr"]["mean"] > abs(neg)
    for r in rows.values():
        assert 0 < r["after"]["mean"] < 1 and math.isclose(sum(r["causes_after"].values()), 1.0, rel_tol=1e-9)
    mri = {r["value"]: r for r in T.mri_after_negative_lp(tables_subtype, ci=CI)}
    assert set(mri) == set(F.LEVELS["mri"])


@pytest.mark.parametrize("path", sorted(PATIENTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_walkthrough_matches_the_answer(draws_subtype, tables_subtype, path):
    from palsy.scripts.commands import common

    patient = common.patient_from(__import__("argparse").Namespace(), str(path))
    w = T.walkthrough(patient, draws_subtype, tables_subtype, ci=CI)
    ans = A.answer(patient, draws_subtype, ci=CI, tables=tables_subtype)
    assert len(w["steps"]) == len(ans.players) > 0
    last = w["steps"][-1]["probability_after"]
    for key in ("mean", "median", "lower", "upper"):
        assert last[key] == pytest.approx(ans.probability[key], abs=1e-9)
    for s, c in zip(w["steps"], ans.contributions, strict=True):
        assert s["log_lr"]["mean"] == pytest.approx(c["log_lr"]["mean"], abs=1e-9)
    assert w["steps"][-1]["leading_after"] == ans.leading_cause == w["leading"]


@pytest.mark.parametrize("variant", ["independent", "subtype"])
def test_page_tables_round_trip(draws_independent, draws_subtype, variant):
    """The browser's tables, as JSON and float32, rebuild the answer's: log P(cause), log P(stratum,
    component | cause) over all 96 strata (every context finding) and log P(level | component)."""
    draws = {"independent": draws_independent, "subtype": draws_subtype}[variant]
    t = A.Tables(draws)
    pt = T.page_tables(draws, t)
    back = json.loads(json.dumps(pt, allow_nan=False))
    n, K = t.n, len(t.component_cause)
    assert back["n"] == n and back["causes"] == list(t.causes)
    assert back["component_cause"] == [int(c) for c in t.component_cause]
    assert back["context"] == list(F.CONTEXT) and len(back["strata"]) == S.N_STRATA
    assert T.decode(back, "logit_theta").shape == (n, K, len(S.NODES))
    got = T.rebuild_page(back)
    np.testing.assert_allclose(got["log_prior"], t.log_prior, atol=1e-5)
    np.testing.assert_allclose(got["log_sk"], t.log_sk, atol=1e-5)
    np.testing.assert_allclose(got["level_lp"], t.level_lp, atol=1e-5)
    # a context with every finding known picks one stratum: the answer's context term
    ctx = {"lineage": "AML", "remission": "remission_off_treatment", "age_group": "adult",
           "recent_vincristine": "no", "recent_hsct": "yes"}
    j = next(i for i, st in enumerate(back["strata"])
             if all(back["context_levels"][a][lv] == ctx[c] for a, (c, lv) in enumerate(zip(back["context"], st, strict=True))))
    np.testing.assert_allclose(got["log_sk"][:, :, j], t.context_term(ctx), atol=1e-5)
    # per draw the page carries the rate model's parameters, not P(stratum, component): base64 of float32
    # under a quarter of what the 96 strata of every component would take
    assert len(pt["ctx_features"]) + len(pt["form_features"]) < (4 * n * K * S.N_STRATA * 4 / 3) / 4


def test_page_tables_refuse_a_changed_rate_model(draws_subtype, monkeypatch):
    """If the shares' structure the page rebuilds no longer matches the model, the build fails
    instead of writing a page with other numbers than the CLI's."""
    wrong = tuple((name, by, None) if binary == "recent_hsct" else (name, by, binary) for name, by, binary in T.SHARES)
    monkeypatch.setattr(T, "SHARES", wrong)
    with pytest.raises(ValueError, match="log_prior|log_sk"):
        T.page_tables(draws_subtype)


def test_page_rules_are_the_priors_files(draws_subtype):
    """The decision's harms and texts and every action come from priors/, with their triggers."""
    from palsy.model import decision as D
    from palsy.model import guidance as G

    settings = D.load(REPO / "priors")
    actions = G.load(REPO / "priors", draws_subtype.causes)
    rules = json.loads(json.dumps(T.page_rules(settings, actions), allow_nan=False))
    assert rules["decision"]["harm"] == settings.harm and rules["decision"]["benefit"] == settings.benefit
    assert rules["decision"]["test_harm"] == settings.test_harm and rules["tests"] == list(F.NEXT_TESTS)
    assert rules["decision"]["action_text"] == settings.action_text
    assert [a["id"] for a in rules["actions"]] == [a.id for a in sorted(actions, key=lambda a: a.priority)]
    for got, a in zip(rules["actions"], sorted(actions, key=lambda a: a.priority), strict=True):
        assert (got["text"], got["detail"], got["refs"], got["when"]) == (a.text, a.detail, list(a.refs), a.when)


def test_teach_module_imports_numpy_only():
    code = ("import sys, palsy.model.teach; bad = [m for m in ('matplotlib', 'jinja2', 'pymc', 'pytensor', 'scipy', 'arviz')"
            " if m in sys.modules]; print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- the pages and the command -------------------------------------------------------------------

class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data):
        if not self._skip:
            self.text.append(data)


def _check_self_contained(html: str) -> _Collect:
    p = _Collect()
    p.feed(html)
    for tag, attrs in p.tags:
        assert tag != "link", "no external stylesheets"
        if tag in ("script", "img", "iframe"):
            src = attrs.get("src") or ""
            assert not src or src.startswith("data:"), f"{tag} loads {src[:60]}"
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html), "no network references"
    text = " ".join(p.text)
    assert not re.search(r"(?<![\d.<>])(0|100)(\.0+)?%", text), "never 0% or 100%"
    assert "excluded" not in text.lower() and "ruled out" not in text.lower()
    return p


@pytest.fixture(scope="module")
def teach_out(draws_independent, draws_subtype, tmp_path_factory):
    out = tmp_path_factory.mktemp("teach")
    proc = run_palsy("teach", "--out", str(out), check=True)
    assert "lesson" in proc.stdout
    return out


@pytest.mark.slow
def test_teach_command_writes_lesson_and_page(teach_out):
    for name in ("lesson.html", "interactive.html", "lesson.json", "figures/posttest_cytology.png",
                 "figures/posttest_flow.png", "figures/where.png", "figures/repeat_lps.png", "figures/findings.png",
                 "figures/source_patients.png"):
        assert (teach_out / name).stat().st_size > 0, name
    assert (teach_out / "figures" / "findings.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lesson = (teach_out / "lesson.html").read_text()
    p = _check_self_contained(lesson)
    text = " ".join(p.text)
    for phrase in ("after 1 negative LP", "1,000", "not within 6", "squar", "source-001", "source-002",
                   "source-000-vignette", "MRI", "mean", "geometric mean", "CrI", "Where the probability goes",
                   "not only Bell's palsy", "Guillain-Barré syndrome", "vincristine neuropathy", "VZV (Ramsay Hunt)",
                   "otomastoiditis", "Leading cause"):
        assert phrase in text, phrase
    assert "against idiopathic Bell's palsy" not in text and "or idiopathic Bell's palsy?" not in text
    # where the probability goes: the share each other cause takes, as the lesson's numbers say
    data = json.loads((teach_out / "lesson.json").read_text())
    assert data["repeat_variant"] == "subtype" and len(data["walkthroughs"]) == 3
    gain = data["where"]["cytology"]["gain"][-1]
    assert sum(gain.values()) == pytest.approx(1.0)
    from palsy.reports import wording as W

    for v in gain.values():
        assert W.percent(v) in text


@pytest.mark.slow
def test_interactive_page_is_self_contained_and_labelled(teach_out):
    html = (teach_out / "interactive.html").read_text()
    p = _check_self_contained(html)
    ids = {a.get("id") for _, a in p.tags if a.get("id")}
    labelled = {a.get("for") for t, a in p.tags if t == "label"}
    for tag, attrs in p.tags:
        if tag in ("select", "input"):
            assert attrs.get("id") in labelled, f"{tag}#{attrs.get('id')} has no <label for>"
    assert "result" in ids
    result = next(a for t, a in p.tags if a.get("id") == "result")
    assert result.get("aria-live") == "polite"
    m = re.search(r'<script type="application/json" id="palsy-draws">(.*?)</script>', html, re.S)
    models = json.loads(m.group(1))
    from palsy.model import variants

    assert models[0]["variant"] == variants.DEFAULT_VARIANT
    assert sorted(x["variant"] for x in models) == sorted(variants.VARIANTS)
    for x in models:
        assert T.decode(x, "ctx_features").shape == (x["n"], len(x["ctx_incidence"]))
    for name in ("cause-zoster", "cause-gbs", "own-thresholds", "threshold-low", "threshold-high", "actions-list",
                 "decision-line", "decision-tests", "next-tests-body"):
        assert name in ids, name
    # every finding of the schema is settable, with the levels the CLI takes, and unknown by default
    options: dict[str, list[str]] = {}
    current = None
    for tag, attrs in p.tags:
        if tag == "select":
            current = attrs.get("id")
            options[current] = []
        elif tag == "option" and current is not None:
            options[current].append(attrs.get("value"))
    for name in F.FINDINGS:
        if name != "csf":
            assert options[name] == ["unknown", *F.allowed(name)], name
    # no clinical text in the script: the actions' and the decision's words are the page's data
    rules = json.loads(re.search(r'<script type="application/json" id="palsy-rules">(.*?)</script>', html, re.S).group(1))
    js = (REPO / "reports" / "static" / "teach.js").read_text()
    from palsy.model import decision as D
    from palsy.model import guidance as G

    actions = G.load(REPO / "priors", tuple(models[0]["causes"]))
    assert [a["id"] for a in rules["actions"]] == [a.id for a in sorted(actions, key=lambda a: a.priority)]
    texts = [a.text for a in actions] + list(D.load(REPO / "priors").action_text.values())
    for text in texts:
        assert text not in js and text[:30] not in js, text
    assert {a["text"] for a in rules["actions"]} == {a.text for a in actions}
    for key in {k for a in actions for k in a.refs}:
        assert rules["references"].get(key), key


def test_teach_bad_ci_is_bad_input(tmp_path):
    proc = run_palsy("teach", "--out", str(tmp_path / "x"), "--ci", "1.5")
    assert proc.returncode == 2 and "--ci" in proc.stderr
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_subtype_lesson_renders_and_escapes(draws_subtype):
    from palsy.reports import teaching as R

    patient = F.Patient(id="teach-escape", description="<script>alert(1)</script> & co",
                        csf=_lps("negative:flow")).replace(laterality="bilateral")
    lesson = T.lesson(draws_subtype, patients=[patient], ci=0.8, tree_pretest=0.5)
    assert lesson["repeat_variant"] == "subtype" and lesson["form_shift"] is not None
    typical = A.answer(T.TYPICAL, draws_subtype, ci=0.8)
    assert lesson["typical"]["prior"]["mean"] == pytest.approx(typical.probability["mean"], abs=1e-12)
    for c in typical.cause_summaries():
        assert lesson["typical"]["prior_causes"][c["cause"]] == pytest.approx(c["probability"]["mean"], abs=1e-12)
    html = R.lesson_html(lesson, R.figures(lesson))
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in html
    text = " ".join(_check_self_contained(html).text)
    assert "80% CrI" in text and "pretest P(infiltration) 50.0%" in text


def test_teach_output_is_all_or_nothing(tmp_path, monkeypatch):
    """A failure while making the lesson leaves no figures behind (issue 9: partial output)."""
    from palsy.reports import teaching as R

    L = {"not_modelled": []}
    monkeypatch.setattr(R, "figures", lambda L: {"a.png": b"png"})

    def broken(*a, **k):
        raise RuntimeError("template failed")

    monkeypatch.setattr(R, "lesson_html", broken)
    with pytest.raises(RuntimeError):
        R.write(tmp_path / "out", L, [], rules={}, ci=0.9)
    assert not list((tmp_path / "out").rglob("*.png")) and not list((tmp_path / "out").rglob("*.html"))
