"""Review s16, item 1: exported counts cannot be recovered by subtraction (fast: no fit).

Each test works out, from a counts file alone, every value a hidden number can still take given the
published numbers and the linear relations between them (a stratum's total, the findings cells as lower
bounds of their cause's count, the site's rows), by brute force, and asserts that none is pinned to one
value. The inputs are the reviewer's (tests/fixtures/registry_s16/leak_*.csv, diff_*.csv).
"""

from __future__ import annotations

import itertools
import json

import pytest
import yaml
from conftest import REPO, run_palsy

from palsy.model import findings as F
from palsy.model import registry as RG
from palsy.model import registry_counts as RC

FIX = REPO / "tests" / "fixtures" / "registry_s16"
SITE_PARTS = ("out_of_scope", "other", "undetermined", "causes_not_shared")


@pytest.fixture(scope="module")
def ev():
    from palsy.model import evidence as E

    return E.load(REPO / "priors")


def _range(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v["censored"])


def _values(ranges: dict[str, tuple[int, int]], ok) -> dict[str, set[int]]:
    """Every value each number takes over the assignments within ``ranges`` that satisfy ``ok``."""
    names = list(ranges)
    seen: dict[str, set[int]] = {k: set() for k in names}
    for combo in itertools.product(*(range(lo, hi + 1) for lo, hi in ranges.values())):
        a = dict(zip(names, combo, strict=True))
        if ok(a):
            for k in names:
                seen[k].add(a[k])
    return seen


def pinned_numbers(counts: dict) -> list[str]:
    """The hidden numbers of a counts file that its published numbers pin to one value."""
    out = []
    for site, block in counts["sites"].items():
        for i, s in enumerate(block["strata"]):
            if "causes" not in s:
                continue
            ranges = {c: _range(v) for c, v in s["causes"].items()}
            for cell in s["findings"]:  # a findings cell's count is a lower bound of its cause's
                if cell["cause"] in ranges:
                    lo, hi = ranges[cell["cause"]]
                    ranges[cell["cause"]] = (max(lo, cell["count"]), hi)
            hidden = [c for c, v in s["causes"].items() if not isinstance(v, int)]
            values = _values(ranges, lambda a, n=s["total"]: sum(a.values()) == n)
            out += [f"{site}.strata[{i}].{c} = {values[c]}" for c in hidden if len(values[c]) < 2]
        shared = sum(s.get("total", 0) for s in block["strata"])
        ranges = {k: _range(block[k]) for k in (*SITE_PARTS, "rows")}
        hidden = [k for k in ranges if not isinstance(block[k], int)]
        values = _values(ranges, lambda a, n=shared: a["rows"] == n + sum(a[k] for k in SITE_PARTS))
        out += [f"{site}.{k} = {values[k]}" for k in hidden if len(values[k]) < 2]
    return out


def export(path, ev, t=5):
    return json.loads(RC.to_bytes(RC.export(RG.read(path, ev.schema, ev.causes), ev.schema, t)))


@pytest.mark.parametrize("name", ["leak_pair", "leak_compl", "leak_site", "diff_jan", "diff_jul"])
def test_the_reviewers_leaks_no_longer_pin_a_count(ev, name):
    """(a) two hidden cells whose sum the total gives, (b) a findings cell beside its hidden cause, (c) a
    site total recoverable from the others, (d) the July export alone: nothing hidden is pinned."""
    counts = export(FIX / f"{name}.csv", ev)
    assert pinned_numbers(counts) == []
    for site in counts["sites"].values():  # and still nothing small is published exactly
        for k in (*SITE_PARTS, "rows", "findings_withheld"):
            assert not isinstance(site[k], int) or site[k] == 0 or site[k] >= 5


def test_hidden_cells_are_ranges_from_zero_so_their_sum_does_not_pin_them(ev):
    """leak_pair: bell 5, zoster 1, gbs 1: the five small causes (zeros too) are 0-4 adding up to 2."""
    s = export(FIX / "leak_pair.csv", ev)["sites"]["A"]["strata"][0]
    assert s["total"] == 7 and s["causes"]["bell"] == 5
    assert all(s["causes"][c] == {"censored": [0, 4]} for c in ev.causes if c != "bell")


def _rows(spec: dict[str, int]) -> list[dict]:
    out = []
    for cause, n in spec.items():
        out += [{"site": "A", "period": "2024-01", "final_cause": cause, "established_by": ["follow_up"],
                 "lineage": "B-ALL", "remission": "remission_on_treatment", "age_group": "child",
                 "onset": "acute", "laterality": "unilateral"}] * n
    return out


def test_no_findings_cell_of_a_cause_whose_count_is_hidden(ev):
    """One small cause among causes of 5 or more: the smallest large count is hidden too (the total would
    pin the small one), and its findings cell, a lower bound of it, is not published."""
    spec = {"infiltration": 6, "bell": 7, "zoster": 5, "vincristine": 8, "gbs": 9, "otomastoiditis": 1}
    reg = RG.from_mappings([(f"row {i}", r) for i, r in enumerate(_rows(spec), 1)], ev.schema, ev.causes, source="t")
    counts = json.loads(RC.to_bytes(RC.export(reg, ev.schema, 5)))
    s = counts["sites"]["A"]["strata"][0]
    hidden = {c for c, v in s["causes"].items() if not isinstance(v, int)}
    assert hidden == {"otomastoiditis", "zoster"}
    assert not {c["cause"] for c in s["findings"]} & hidden
    assert pinned_numbers(counts) == []


@pytest.mark.parametrize("threshold", [3, 5])
def test_no_count_is_pinned_in_simulated_registries(ev, threshold):
    from test_registry import _sim

    for seed in range(3):
        reg = _sim(ev, 80, seed, sites=("A", "B"))[0]
        counts = json.loads(RC.to_bytes(RC.export(reg, ev.schema, threshold)))
        assert pinned_numbers(counts) == [], seed


def test_counts_with_ranges_from_zero_read_back(ev, tmp_path):
    """The censored strata of the new exports read back as completions within the ranges."""
    path = tmp_path / "c.json"
    path.write_text(json.dumps(export(FIX / "leak_pair.csv", ev)))
    reg = RC.read(path, ev.schema, ev.causes, 0.5)
    (cens,) = reg.censored
    assert cens.completions.sum(axis=1).tolist() == [7] * len(cens.completions)
    assert len(cens.completions) == 15  # two patients among five causes


@pytest.mark.parametrize("threshold", ["1", "2"])
def test_a_threshold_below_3_is_refused_saying_why(tmp_path, threshold):
    out = tmp_path / "t.json"
    proc = run_palsy("registry", "export-counts", str(FIX / "leak_pair.csv"), "--out", str(out), "--threshold", threshold)
    assert proc.returncode == 2 and not out.exists() and "Traceback" not in proc.stderr
    assert f"--threshold: {threshold} is not allowed" in proc.stderr and "single out a patient" in proc.stderr


def test_a_settings_threshold_below_3_is_refused(tmp_path):
    import shutil

    pdir = tmp_path / "priors"
    shutil.copytree(REPO / "priors", pdir)
    doc = yaml.safe_load((pdir / "registry.yaml").read_text())
    doc["export"]["threshold"] = 1
    (pdir / "registry.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(F.InputError, match="export.threshold: 1 is not allowed.*single out"):
        RG.settings(pdir)


def test_the_docs_say_two_exports_can_be_differenced():
    text = " ".join((REPO / "docs" / "registry.md").read_text().split())
    assert "Two exports can be differenced" in text and "one cumulative export" in text
    assert "disjoint periods" in text
