"""The interactive page driven in Debian's headless Chromium (Playwright), against the CLI.

The page recomputes the answer in the browser from the same posterior draws as the CLI (float32), so
for the same inputs (including ``--pretest`` and ``--causes``) its P(infiltration) (mean, median) and
every cause's mean must equal ``palsy posterior --json`` up to float32 rounding, not Monte Carlo
error. This test must run in CI (``make setup`` installs chromium): it fails, rather than skips, when
the browser or Playwright is missing.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_palsy

pytestmark = pytest.mark.slow

TOL = 1e-5  # float32 tables: no Monte Carlo error between the page and the CLI
SELECTS = ("lineage", "remission", "onset", "laterality", "eighth_nerve", "other_cranial_nerves",
           "peripheral_nerves", "vesicles", "otoscopy", "csf_profile", "mri")
CAUSES = ("bell", "zoster", "vincristine", "gbs", "otomastoiditis")

#: (variant, pretest or None, page settings, causes weighed or None for all)
SCENARIOS = [
    ("independent", None,
     {"lineage": "T-ALL", "remission": "remission_on_treatment", "laterality": "unilateral",
      "other_cranial_nerves": "none", "lps": ["negative:cytology"]}, None),
    ("subtype", 0.3,
     {"lps": ["negative:cytology", "negative:flow"], "mri": "facial_nerve_enhancement"}, None),
    ("subtype", None,
     {"lineage": "AML", "remission": "remission_off_treatment", "peripheral_nerves": "one_or_more",
      "lps": ["negative:cytology", "negative:cytology"], "mri": "mass"}, None),
    ("independent", 0.1,
     {"laterality": "bilateral", "lps": ["negative:flow", "negative:flow", "negative:flow"]}, None),
    ("subtype", 0.05,
     {"remission": "not_in_remission", "other_cranial_nerves": "one_or_more",
      "lps": ["negative:cytology", "negative:cytology", "negative:cytology", "negative:flow", "negative:flow",
              "positive:flow"], "mri": "normal"}, None),
    # the mimics' findings and the CSF profile (jointly with the first LP, or with it marginalised)
    ("subtype", None,
     {"lineage": "B-ALL", "onset": "acute", "eighth_nerve": "involved", "vesicles": "present", "otoscopy": "normal",
      "lps": ["negative:flow"], "csf_profile": "pleocytosis", "mri": "vii_viii_enhancement"}, None),
    ("subtype", None,
     {"onset": "progressive", "peripheral_nerves": "one_or_more", "csf_profile": "protein_only"}, None),
    ("independent", 0.4,
     {"lineage": "AML", "remission": "not_in_remission", "otoscopy": "abnormal", "mri": "otomastoid_inflammation"},
     None),
    # --causes: the differential restricted
    ("subtype", None, {"lineage": "T-ALL", "laterality": "bilateral", "lps": ["negative:cytology"]},
     ("infiltration", "bell")),
    ("subtype", 0.2, {"vesicles": "present"}, ("infiltration", "bell", "gbs")),
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


def _set(page, variant: str, pretest: float | None, s: dict, causes) -> None:
    page.select_option("#variant", variant)
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
    for name in SELECTS:
        page.select_option(f"#{name}", s.get(name, "unknown"))
    lps = s.get("lps", [])
    page.select_option("#n-lps", str(len(lps)))
    for i, code in enumerate(lps, start=1):
        result, method = code.split(":")
        page.select_option(f"#lp-{i}-result", result)
        page.select_option(f"#lp-{i}-method", method)


def _displayed(page) -> dict:
    def pct(sel: str) -> float:
        text = page.inner_text(sel).strip()
        assert text.endswith("%"), text
        if text.startswith(("<", ">")):  # "<0.1%" or ">99.9%": never 0% or 100%; read as the bound's middle
            assert text in ("<0.1%", ">99.9%"), text
            return 0.0005 if text.startswith("<") else 0.9995
        return float(text[:-1]) / 100

    r = page.locator("#result")
    rows = {row.get_attribute("data-cause"): float(row.get_attribute("data-mean"))
            for row in page.locator("#differential-body tr").all()}
    return {"mean": pct("#p-mean"), "median": pct("#p-median"),
            "data_mean": float(r.get_attribute("data-mean")), "data_median": float(r.get_attribute("data-median")),
            "leading": r.get_attribute("data-leading"), "causes": rows, "text": page.inner_text("#result")}


def _cli(variant: str, pretest: float | None, s: dict, causes) -> dict:
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
    return json.loads(run_palsy(*args, check=True).stdout)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s[0]}-{s[1]}-{i}" for i, s in enumerate(SCENARIOS)])
def test_page_matches_cli(page, scenario):
    from reports import wording as W

    variant, pretest, settings, causes = scenario
    _set(page, variant, pretest, settings, causes)
    shown = _displayed(page)
    cli = _cli(variant, pretest, settings, causes)
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
    # the waterfall: the prior row plus one row per finding given (context findings only without a pretest)
    n_findings = len(cli["contributions"])
    for i in range(1, 7):
        assert page.is_visible(f"#lp-{i}-method") == (i <= len(settings.get("lps", [])))
    assert page.locator("#waterfall-body tr").count() == 1 + n_findings
    if pretest is None:
        n_given = len(settings.get("lps", [])) + sum(1 for k in settings if k != "lps")
        assert n_findings == n_given


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
