"""The interactive page driven in Debian's headless Chromium (Playwright), against the CLI.

The page recomputes the answer in the browser from the same posterior draws as the CLI (float32), so
for the same inputs (every finding of the schema, the context findings included, ``--pretest``,
``--causes`` and ``--thresholds``) its P(infiltration) (mean, median), every cause's mean, what the
next test could do, the decision (thresholds, action, what each test could change, negative LPs to the
lower threshold) and the actions that apply must equal ``palsy posterior --json`` up to float32
rounding, not Monte Carlo error. This test must run in CI (``make setup`` installs chromium): it fails,
rather than skips, when the browser or Playwright is missing.
"""

from __future__ import annotations

import json
import random

import pytest

from palsy.model import findings as F
from tests.conftest import REPO, run_palsy

pytestmark = pytest.mark.slow

TOL = 1e-5  # float32 tables: no Monte Carlo error between the page and the CLI
SELECTS = tuple(n for n in F.FINDINGS if n != "csf")
CAUSES = ("bell", "zoster", "vincristine", "gbs", "otomastoiditis")
CONTEXT3 = ("age_group", "recent_vincristine", "recent_hsct")

#: (variant, pretest or None, page settings, causes weighed or None for all, thresholds or None)
SCENARIOS = [
    ("independent", None,
     {"lineage": "T-ALL", "remission": "remission_on_treatment", "age_group": "adult", "laterality": "unilateral",
      "other_cranial_nerves": "none", "lps": ["negative:cytology"]}, None, None),
    ("subtype", 0.3,
     {"age_group": "child", "recent_vincristine": "yes", "lps": ["negative:cytology", "negative:flow"],
      "mri": "facial_nerve_enhancement"}, None, None),
    ("subtype", None,
     {"lineage": "AML", "remission": "remission_off_treatment", "recent_hsct": "yes",
      "peripheral_nerves": "one_or_more", "lps": ["negative:cytology", "negative:cytology"], "mri": "mass"}, None, None),
    ("independent", 0.1,
     {"laterality": "bilateral", "lps": ["negative:flow", "negative:flow", "negative:flow"]}, None, None),
    ("subtype", 0.05,
     {"remission": "not_in_remission", "other_cranial_nerves": "one_or_more",
      "lps": ["negative:cytology", "negative:cytology", "negative:cytology", "negative:flow", "negative:flow",
              "positive:flow"], "mri": "normal"}, None, None),
    # the vincristine picture of DESIGN §1: every context finding set, the vinca hallmarks
    ("subtype", None,
     {"lineage": "B-ALL", "remission": "remission_on_treatment", "age_group": "child", "recent_vincristine": "yes",
      "recent_hsct": "no", "forehead": "involved", "onset": "progressive", "laterality": "bilateral",
      "other_cranial_nerves": "one_or_more", "peripheral_nerves": "one_or_more", "lps": ["negative:flow"],
      "csf_profile": "normal", "mri": "normal"}, None, None),
    # the mimics' findings and the CSF profile (jointly with the first LP, or with it marginalised)
    ("subtype", None,
     {"lineage": "B-ALL", "age_group": "adult", "recent_vincristine": "no", "recent_hsct": "yes", "onset": "acute",
      "eighth_nerve": "involved", "vesicles": "present", "otoscopy": "normal", "lps": ["negative:flow"],
      "csf_profile": "pleocytosis", "mri": "vii_viii_enhancement"}, None, None),
    ("subtype", None,
     {"recent_vincristine": "no", "onset": "progressive", "peripheral_nerves": "one_or_more",
      "csf_profile": "protein_only"}, None, None),
    ("independent", 0.4,
     {"lineage": "AML", "remission": "not_in_remission", "recent_hsct": "no", "otoscopy": "abnormal",
      "mri": "otomastoid_inflammation"}, None, None),
    # out of scope: a spared forehead, a palsy that led to the diagnosis (answered as not in remission)
    ("subtype", None,
     {"lineage": "T-ALL", "remission": "at_diagnosis", "age_group": "child", "forehead": "spared",
      "laterality": "unilateral"}, None, None),
    # --causes: the differential restricted (hallmarks of a cause left out are warned about)
    ("subtype", None,
     {"lineage": "T-ALL", "recent_vincristine": "yes", "laterality": "bilateral", "lps": ["negative:cytology"]},
     ("infiltration", "bell"), None),
    ("subtype", 0.2, {"age_group": "adult", "vesicles": "present"}, ("infiltration", "bell", "gbs"), None),
    # --thresholds: the clinician's own pair
    ("subtype", None,
     {"lineage": "T-ALL", "remission": "remission_on_treatment", "age_group": "child", "recent_vincristine": "no",
      "recent_hsct": "no", "laterality": "unilateral", "lps": ["negative:cytology"]}, None, (0.02, 0.6)),
]


@pytest.fixture(scope="module")
def page_url(draws_independent, draws_subtype, tmp_path_factory):
    out = tmp_path_factory.mktemp("teach-browser")
    run_palsy("teach", "--out", str(out), check=True)
    return (out / "interactive.html").resolve().as_uri()


@pytest.fixture
def page(browser, page_url):
    context = browser.new_context()
    requests: list[str] = []
    pg = context.new_page()
    pg.on("request", lambda r: requests.append(r.url))
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(page_url)
    pg.wait_for_selector("body[data-ready=true]", timeout=60_000)
    yield pg
    assert not errors, errors
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
    context.close()


def _select(page, sel: str, value: str) -> None:
    """Choose ``value`` as a user would; a control already showing it is left alone (each change recomputes)."""
    if page.input_value(sel) != value:
        page.select_option(sel, value)


def _set(page, variant: str, pretest: float | None, s: dict, causes, thresholds) -> None:
    _select(page, "#variant", variant)
    if pretest is None:
        page.check("#base-model")
    else:
        page.check("#base-pretest")
        page.fill("#pretest", f"{100 * pretest:g}")
    for c in CAUSES:
        if causes is None or c in causes:
            page.check(f"#cause-{c}")
        else:
            page.uncheck(f"#cause-{c}")
    if thresholds is None:
        page.uncheck("#own-thresholds")
    else:
        page.check("#own-thresholds")
        page.fill("#threshold-low", f"{100 * thresholds[0]:g}")
        page.fill("#threshold-high", f"{100 * thresholds[1]:g}")
    for name in SELECTS:
        _select(page, f"#{name}", s.get(name, "unknown"))
    lps = s.get("lps", [])
    _select(page, "#n-lps", str(len(lps)))
    for i, code in enumerate(lps, start=1):
        result, method = code.split(":")
        _select(page, f"#lp-{i}-result", result)
        _select(page, f"#lp-{i}-method", method)


def _pct(page, sel: str) -> float:
    text = page.inner_text(sel).strip()
    assert text.endswith("%"), text
    if text.startswith(("<", ">")):  # "<0.1%" or ">99.9%": never 0% or 100%; read as the bound's middle
        assert text in ("<0.1%", ">99.9%"), text
        return 0.0005 if text.startswith("<") else 0.9995
    return float(text[:-1]) / 100


def _displayed(page) -> dict:
    """Everything the page shows that the CLI's JSON also has, read from the page's elements."""
    r = page.locator("#result")
    rows = {row.get_attribute("data-cause"): float(row.get_attribute("data-mean"))
            for row in page.locator("#differential-body tr").all()}
    line = page.locator("#decision-line")
    tests = {row.get_attribute("data-test"): {"can_change": row.get_attribute("data-can-change") == "true",
                                              "probability_of_change": float(row.get_attribute("data-probability-of-change")),
                                              "voi": float(row.get_attribute("data-voi"))}
             for row in page.locator("#decision-tests tr").all()}
    neg = page.locator("#negative-lps")
    outcomes = [{"test": row.get_attribute("data-test"), "result": row.get_attribute("data-result"),
                 "probability": float(row.get_attribute("data-probability")),
                 "after": float(row.get_attribute("data-after")), "leading": row.get_attribute("data-leading")}
                for row in page.locator("#next-tests-body tr").all()]
    actions = [(li.get_attribute("data-action"), li.locator(".action-text").inner_text())
               for li in page.locator("#actions-list > li").all()]
    notes = [(li.get_attribute("data-kind"), li.inner_text()) for li in page.locator("#notes li").all()]
    return {"mean": _pct(page, "#p-mean"), "median": _pct(page, "#p-median"),
            "data_mean": float(r.get_attribute("data-mean")), "data_median": float(r.get_attribute("data-median")),
            "leading": r.get_attribute("data-leading"), "causes": rows, "text": page.inner_text("#result"),
            "action": line.get_attribute("data-action"), "low": float(line.get_attribute("data-low")),
            "high": float(line.get_attribute("data-high")), "decision_text": line.inner_text(), "tests": tests,
            "to_low": {m: neg.get_attribute(f"data-{m}") for m in F.CSF_METHODS}, "outcomes": outcomes,
            "actions": actions, "notes": notes}


def _cli(variant: str, pretest: float | None, s: dict, causes, thresholds) -> dict:
    args = ["posterior", "--json", "--variant", variant]
    for name in SELECTS:
        if name in s:
            args += ["--" + name.replace("_", "-"), s[name]]
    for code in s.get("lps", []):
        args += ["--csf", code]
    if pretest is not None:
        args += ["--pretest", str(pretest)]
    if causes is not None:
        args += ["--causes", ",".join(causes)]
    if thresholds is not None:
        args += ["--thresholds", f"{thresholds[0]},{thresholds[1]}"]
    return json.loads(run_palsy(*args, check=True).stdout)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s[0]}-{s[1]}-{i}" for i, s in enumerate(SCENARIOS)])
def test_page_matches_cli(page, scenario):
    from palsy.reports import wording as W

    variant, pretest, settings, causes, thresholds = scenario
    _set(page, variant, pretest, settings, causes, thresholds)
    shown = _displayed(page)
    cli = _cli(variant, pretest, settings, causes, thresholds)
    # the differential
    p = cli["probability"]
    assert abs(shown["data_mean"] - p["mean"]) < TOL and abs(shown["data_median"] - p["median"]) < TOL, (shown, p)
    assert abs(shown["mean"] - p["mean"]) < 0.0006 and abs(shown["median"] - p["median"]) < 0.0006
    assert set(shown["causes"]) == {c["cause"] for c in cli["causes"]}
    for c in cli["causes"]:
        assert abs(shown["causes"][c["cause"]] - c["probability"]["mean"]) < TOL, c
    assert shown["leading"] == cli["leading_cause"]
    text = shown["text"]
    assert "mean" in text and "CrI" in text and "weighed against" in text
    for c in cli["causes"]:
        if c["cause"] != "infiltration":
            assert {"bell": "Bell's palsy", "zoster": "VZV", "vincristine": "vincristine", "gbs": "Guillain-Barré",
                    "otomastoiditis": "otomastoiditis"}[c["cause"]] in text
    assert W.percent(p["mean"]) in text or abs(shown["mean"] - p["mean"]) < 1e-6
    assert ("only if the palsy is peripheral" in text) == (settings.get("forehead") == "spared")
    # scope notes and hallmark warnings, as many as the CLI's, the scope notes in its words
    assert [t for k, t in shown["notes"] if k == "scope"] == [f"Out of scope: {n}" for n in cli["scope_notes"]]
    assert len([k for k, _ in shown["notes"] if k == "warning"]) == len(cli["warnings"])
    # what the next test could do
    want = [(t["test"], o["result"], o) for t in cli["next_tests"] for o in t["outcomes"]]
    assert [(o["test"], o["result"]) for o in shown["outcomes"]] == [(t, r) for t, r, _ in want]
    for got, (_, _, o) in zip(shown["outcomes"], want, strict=True):
        assert abs(got["probability"] - o["probability"]["mean"]) < TOL, (got, o)
        assert abs(got["after"] - o["probability_after"]["mean"]) < TOL, (got, o)
        assert got["leading"] == o["leading_cause_after"], (got, o)
    # the decision
    dec = cli["decision"]
    assert shown["action"] == dec["action"], (shown["decision_text"], dec)
    assert abs(shown["low"] - dec["thresholds"]["low"]) < TOL and abs(shown["high"] - dec["thresholds"]["high"]) < TOL
    assert dec["action_text"] in shown["decision_text"]
    if thresholds is not None:
        assert (shown["low"], shown["high"]) == pytest.approx(thresholds)
    assert set(shown["tests"]) == {t["test"] for t in dec["tests"]}
    for t in dec["tests"]:
        got = shown["tests"][t["test"]]
        assert got["can_change"] == t["can_change_action"], (got, t)
        assert abs(got["probability_of_change"] - t["probability_of_change"]) < TOL, (got, t)
        assert abs(got["voi"] - t["value_of_information"]) < TOL, (got, t)
    assert shown["to_low"] == {m: "none" if k is None else str(k) for m, k in dec["negative_lps_to_low"].items()}
    # what to do now: the same actions in the same order, in the words of priors/actions.yaml
    assert shown["actions"] == [(a["id"], a["text"]) for a in cli["actions"]]
    # the waterfall: the prior row plus one row per finding given (context findings only without a pretest)
    n_findings = len(cli["contributions"])
    for i in range(1, 7):
        assert page.is_visible(f"#lp-{i}-method") == (i <= len(settings.get("lps", [])))
    assert page.locator("#waterfall-body tr").count() == 1 + n_findings
    if pretest is None:
        n_given = len(settings.get("lps", [])) + sum(1 for k in settings if k not in ("lps", "forehead"))
        assert n_findings == n_given


def test_context_findings_move_the_page(page):
    """Each of age group, recent vincristine and recent HSCT changes the differential on the page
    (they are findings, not averaged away); with a pretest they set only the other causes' shares."""
    page.select_option("#variant", "subtype")
    page.select_option("#lineage", "B-ALL")
    page.select_option("#remission", "remission_on_treatment")

    def differential() -> dict[str, float]:
        return {row.get_attribute("data-cause"): float(row.get_attribute("data-mean"))
                for row in page.locator("#differential-body tr").all()}

    for pretest in (None, 0.3):
        if pretest is not None:
            page.check("#base-pretest")
            page.fill("#pretest", "30")
        for name in CONTEXT3:
            means = {}
            for level in ("unknown", *F.LEVELS[name]):
                page.select_option(f"#{name}", level)
                means[level] = differential()
            a, b = (means[lv] for lv in F.LEVELS[name])
            assert max(abs(a[c] - b[c]) for c in a) > 0.01, (name, means)
            if pretest is not None:  # P(infiltration) is the clinician's, whoever the patient is
                for m in means.values():
                    assert abs(m["infiltration"] - pretest) < 1e-9, (name, means)
            page.select_option(f"#{name}", "unknown")


def _random_patient(rng: random.Random) -> tuple[dict, list[dict]]:
    values = {n: rng.choice([None, None, *F.allowed(n)]) for n in SELECTS}
    csf = [{"result": rng.choice(F.CSF_RESULTS), "method": rng.choice(F.CSF_METHODS)}
           for _ in range(rng.choice([0, 0, 1, 2, 6]))]
    return values, csf


def test_trigger_grammar_matches_guidance(page):
    """The page's trigger evaluator is model.guidance.holds: every action of priors/actions.yaml, on
    random findings, differentials (some causes not weighed) and decisions, including the edges."""
    from palsy.model import decision as D
    from palsy.model import guidance as G

    actions = G.load(REPO / "priors", ("infiltration", "bell", "zoster", "vincristine", "gbs", "otomastoiditis"))
    rng = random.Random(7)
    cases = []
    for _ in range(300):
        values, csf = _random_patient(rng)
        causes = [c for c in ("infiltration", *CAUSES) if c == "infiltration" or rng.random() < 0.85]
        means = {c: rng.choice([0.01, 0.05, 0.0500001, 0.1, 0.3, rng.random()]) for c in causes}
        action = rng.choice([*D.ACTIONS, None])
        cases.append({"values": values, "csf": csf, "means": means, "action": action})
    got = page.evaluate("""([actions, cases]) => cases.map(k => actions.map(
        a => window.palsyTeach.holds(a, k.values, k.csf, k.means, k.action)))""",
                        [[a.when for a in actions], cases])
    n_true = 0
    for k, row in zip(cases, got, strict=True):
        patient = F.Patient(values=dict(k["values"]), csf=tuple(F.LP(**lp) for lp in k["csf"]))
        want = [G.holds(a.when, patient, k["means"], k["action"]) for a in actions]
        assert row == want, (k, [a.id for a, x, y in zip(actions, row, want, strict=True) if x != y])
        n_true += sum(want)
    assert 0 < n_true < len(cases) * len(actions)
    texts = page.evaluate("(conds) => conds.map(c => window.palsyTeach.triggerText(c))", [a.when for a in actions])
    for a, t in zip(actions, texts, strict=True):
        assert t and "[object" not in t and "{" not in t, (a.id, t)


def test_page_keyboard_only(page):
    """Every control is reachable and operable with the keyboard; the result is announced."""
    page.focus("#variant")
    page.keyboard.press("Tab")  # to the CI select
    page.keyboard.press("Tab")  # to the base-rate radio group
    assert page.evaluate("document.activeElement.id") in ("base-model", "base-pretest")
    page.focus("#laterality")
    before = page.inner_text("#p-mean")
    page.keyboard.press("ArrowDown")  # unknown -> unilateral
    page.keyboard.press("ArrowDown")  # -> bilateral
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('laterality').value !== 'unknown'")
    assert page.locator("#result").get_attribute("aria-live") == "polite"
    page.focus("#n-lps")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("!document.getElementById('lp-1').hidden")
    assert page.is_visible("#lp-1-result") and not page.is_visible("#lp-2-result")
    assert page.inner_text("#p-mean") != before


def test_bad_thresholds_say_so(page):
    """Thresholds the CLI refuses (lower not below upper) give a message, not a decision."""
    page.check("#own-thresholds")
    page.fill("#threshold-low", "50")
    page.fill("#threshold-high", "20")
    assert "lower < upper" in page.inner_text("#p-interval")
    assert page.locator("#result").get_attribute("data-mean") is None
    assert not page.is_visible("#decision") and not page.is_visible("#actions")
    page.fill("#threshold-high", "90")
    assert page.locator("#result").get_attribute("data-mean") is not None and page.is_visible("#decision")
