"""The interactive teaching page driven in Debian's headless Chromium (Playwright), against the CLI.

For the same inputs (including ``--pretest``) the page's mean and median must match
``palsy posterior --json`` within 0.005. This test must run in CI (``make setup`` installs chromium):
it fails, rather than skips, when the browser or Playwright is missing.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import run_palsy

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOL = 0.005

#: (variant, pretest or None, page settings, CLI flags)
SCENARIOS = [
    ("independent", None,
     {"lineage": "T-ALL", "remission": "remission_on_treatment", "laterality": "unilateral",
      "other_cranial_nerves": "none", "lps": ["negative:cytology"]},
     ["--lineage", "T-ALL", "--remission", "remission_on_treatment", "--laterality", "unilateral",
      "--other-cranial-nerves", "none", "--csf", "negative:cytology"]),
    ("subtype", 0.3,
     {"lps": ["negative:cytology", "negative:flow"], "mri": "facial_nerve_enhancement"},
     ["--csf", "negative:cytology", "--csf", "negative:flow", "--mri", "facial_nerve_enhancement"]),
    ("subtype", None,
     {"lineage": "AML", "remission": "remission_off_treatment", "peripheral_nerves": "one_or_more",
      "lps": ["negative:cytology", "negative:cytology"], "mri": "mass"},
     ["--lineage", "AML", "--remission", "remission_off_treatment", "--peripheral-nerves", "one_or_more",
      "--csf", "negative:cytology", "--csf", "negative:cytology", "--mri", "mass"]),
    ("independent", 0.1,
     {"laterality": "bilateral", "lps": ["negative:flow", "negative:flow", "negative:flow"]},
     ["--laterality", "bilateral", "--csf", "negative:flow", "--csf", "negative:flow", "--csf", "negative:flow"]),
    ("subtype", 0.05,
     {"remission": "not_in_remission", "other_cranial_nerves": "one_or_more",
      "lps": ["negative:cytology", "negative:cytology", "negative:cytology", "negative:flow", "negative:flow",
              "positive:flow"], "mri": "normal"},
     ["--remission", "not_in_remission", "--other-cranial-nerves", "one_or_more", "--csf", "negative:cytology",
      "--csf", "negative:cytology", "--csf", "negative:cytology", "--csf", "negative:flow", "--csf", "negative:flow",
      "--csf", "positive:flow", "--mri", "normal"]),
]


@pytest.fixture(scope="module")
def page_url(draws_independent, draws_subtype, tmp_path_factory):
    out = tmp_path_factory.mktemp("teach-browser")
    run_palsy("teach", "--out", str(out), check=True)
    return (out / "interactive.html").resolve().as_uri()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    from playwright.sync_api import sync_playwright  # a missing package fails the test: it must run in CI

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


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


def _set(page, variant: str, pretest: float | None, s: dict) -> None:
    page.select_option("#variant", variant)
    if pretest is None:
        page.check("#base-model")
    else:
        page.check("#base-pretest")
        page.fill("#pretest", f"{100 * pretest:g}")
    for name in ("lineage", "remission", "laterality", "other_cranial_nerves", "peripheral_nerves", "mri"):
        page.select_option(f"#{name}", s.get(name, "unknown"))
    lps = s.get("lps", [])
    page.select_option("#n-lps", str(len(lps)))
    for i, code in enumerate(lps, start=1):
        result, method = code.split(":")
        page.select_option(f"#lp-{i}-result", result)
        page.select_option(f"#lp-{i}-method", method)


def _displayed(page) -> dict[str, float]:
    def pct(sel: str) -> float:
        text = page.inner_text(sel).strip()
        assert text.endswith("%"), text
        if text.startswith(("<", ">")):  # "<0.1%" or ">99.9%": never 0% or 100%; read as the bound's middle
            assert text in ("<0.1%", ">99.9%"), text
            return 0.0005 if text.startswith("<") else 0.9995
        return float(text[:-1]) / 100

    r = page.locator("#result")
    return {"mean": pct("#p-mean"), "median": pct("#p-median"),
            "data_mean": float(r.get_attribute("data-mean")), "data_median": float(r.get_attribute("data-median")),
            "text": page.inner_text("#result")}


def _cli(variant: str, pretest: float | None, flags: list[str]) -> dict:
    args = ["posterior", "--json", "--variant", variant, *flags]
    if pretest is not None:
        args += ["--pretest", str(pretest)]
    return json.loads(run_palsy(*args, check=True).stdout)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"{s[0]}-{s[1]}-{i}" for i, s in enumerate(SCENARIOS)])
def test_page_matches_cli(page, scenario):
    variant, pretest, settings, flags = scenario
    _set(page, variant, pretest, settings)
    shown = _displayed(page)
    cli = _cli(variant, pretest, flags)["probability"]
    assert abs(shown["mean"] - cli["mean"]) < TOL, (shown, cli)
    assert abs(shown["median"] - cli["median"]) < TOL, (shown, cli)
    assert abs(shown["data_mean"] - cli["mean"]) < TOL and abs(shown["data_median"] - cli["median"]) < TOL
    text = shown["text"]
    assert "mean" in text and "median" in text and "CrI" in text
    # the waterfall: the base rate row plus one row per finding given
    n_findings = len(settings.get("lps", [])) + sum(1 for k in settings if k != "lps")
    for i in range(1, 7):
        assert page.is_visible(f"#lp-{i}-method") == (i <= len(settings.get("lps", [])))
    assert page.locator("#waterfall-body tr").count() == 1 + n_findings


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
