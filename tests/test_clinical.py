"""Clinical sanity: the hallmark vignettes (docs/design.md §9), the source patients and claims of the
source documents (the founding documents of the project). Numbers are printed (``pytest -s``), not pinned."""

import re
from pathlib import Path

import pytest
import yaml

from palsy.model import answer as A
from palsy.model import findings as F
from palsy.scripts.commands.common import read_patient_file
from tests.conftest import PATIENTS

VIGNETTES = Path(__file__).parent / "fixtures" / "vignettes"


def _vignettes() -> list[Path]:
    return sorted(VIGNETTES.glob("*.yaml"))


@pytest.fixture(params=["independent", "subtype"], scope="module")
def draws(request):
    return request.getfixturevalue(f"draws_{request.param}")


def _report(name: str, a: A.Answer) -> str:
    causes = ", ".join(f"{c['cause']} {100 * c['probability']['mean']:.1f}%" for c in a.cause_summaries())
    return (f"{name} [{a.model['variant']}]: P(infiltration) {100 * a.probability['mean']:.1f}% "
            f"({100 * a.probability['lower']:.1f}-{100 * a.probability['upper']:.1f}); {causes}; "
            f"atypical tail {a.atypical['tail_probability']:.3f}")


@pytest.mark.parametrize("path", _vignettes(), ids=lambda p: p.stem)
def test_hallmark_vignette_is_led_by_its_cause(draws, path):
    """Asserted on the default (subtype) variant; the independent variant pools the forms of
    infiltration, so a form's hallmark (a mass: myeloid sarcoma) is diluted there: printed only."""
    doc = yaml.safe_load(path.read_text())
    assert doc.get("justification"), f"{path.name}: the expected cause must be justified"
    a = A.answer(F.parse_patient(doc["patient"], str(path)), draws)
    print(_report(path.stem, a))
    if doc.get("expected_leading") and a.model["variant"] == "subtype":
        assert a.leading_cause == doc["expected_leading"], _report(path.stem, a)
    if doc.get("expected_atypical"):
        assert a.atypical["flag"], _report(path.stem, a)


@pytest.mark.parametrize("path", sorted(PATIENTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_source_patients(draws, path):
    """Sources 001 and 002 (published infiltration) are led by infiltration. The source-000 vignette
    (T-ALL in maintenance, unilateral, one negative cytology, nothing else known) is not: the
    differential shares it with Bell's palsy and zoster; infiltration stays a main contender."""
    a = A.answer(F.parse_patient(read_patient_file(path), str(path)), draws)
    print(_report(path.stem, a))
    if path.stem == "source-000-vignette":
        assert a.probability["mean"] > 0.1, _report(path.stem, a)
    else:
        assert a.leading_cause == "infiltration", _report(path.stem, a)
    assert not a.atypical["flag"]


def test_typical_presentations_are_not_flagged_atypical(draws):
    for path in _vignettes():
        doc = yaml.safe_load(path.read_text())
        if doc.get("expected_leading") and draws.variant == "subtype":
            a = A.answer(F.parse_patient(doc["patient"]), draws)
            assert not a.atypical["flag"], _report(path.stem, a)


def test_bilateral_involvement_raises_infiltration_off_vincristine(draws):
    """Source 000: 'Bilateral involvement is a major red flag' (where vinca toxicity is not in play)."""
    ctx = {"lineage": "T-ALL", "remission": "remission_on_treatment", "recent_vincristine": "no"}
    uni = A.answer(F.parse_patient({**ctx, "laterality": "unilateral"}), draws)
    bi = A.answer(F.parse_patient({**ctx, "laterality": "bilateral"}), draws)
    assert bi.probability["mean"] > uni.probability["mean"]


def test_one_negative_cytology_does_not_exclude(draws):
    """Source 000: 'Do not rely on single negative CSF examination'."""
    p = F.parse_patient(read_patient_file(PATIENTS / "source-000-vignette.yaml"))
    a = A.answer(p, draws)
    before = A.answer(p.replace(csf=()), draws, shapley=False, next_tests=False, rests_on=False).probability["mean"]
    lp = [c for c in a.contributions if c["index"] is not None][0]
    assert lp["log_lr"]["mean"] < 0 and a.probability["mean"] < before  # it lowers the odds...
    assert a.probability["mean"] > 0.6 * before and a.probability["lower"] > 0.01  # ...but is far from excluding


def test_remission_lowers_but_does_not_remove_risk(draws):
    """Source 000/002: 'maintain high suspicion even in patients in apparent remission'."""
    active = A.answer(F.parse_patient({"lineage": "T-ALL", "remission": "not_in_remission"}), draws)
    off = A.answer(F.parse_patient({"lineage": "T-ALL", "remission": "remission_off_treatment"}), draws)
    assert off.probability["mean"] < active.probability["mean"]
    assert off.probability["mean"] > 0.05 and off.probability["lower"] > 0.005


def test_positive_lp_raises_and_negative_lowers_infiltration(draws):
    base = {"lineage": "T-ALL", "remission": "remission_on_treatment", "laterality": "unilateral"}
    p0 = A.answer(F.parse_patient(base), draws, shapley=False, next_tests=False, rests_on=False).probability["mean"]
    for lp in ("cytology={}", "flow={}", "cytology={},flow={}"):
        quick = {"shapley": False, "next_tests": False, "rests_on": False}
        pos = A.answer(F.parse_patient({**base, "csf": [lp.format("positive", "positive")]}), draws, **quick).probability["mean"]
        neg = A.answer(F.parse_patient({**base, "csf": [lp.format("negative", "negative")]}), draws, **quick).probability["mean"]
        assert neg < p0 < pos


#: Patients whose atypicality tail sat near the 1% threshold (random searches: the statistical review of 5 December,
#: the first three, and again after the evidence changed on 6 December): for them the flag is a draw of the seed.
#: The test takes the three whose tail is nearest the threshold now, so that a change of the evidence moves the
#: choice rather than breaking the test (until 6 December it took the first three, found for the fit of the day).
NEAR_THE_THRESHOLD = [
    {"lineage": "B-ALL", "age_group": "adult", "recent_vincristine": "yes", "recent_hsct": "yes",
     "circulating_blasts": "present", "onset": "progressive", "peripheral_nerves": "one_or_more",
     "vesicles": "present", "otalgia": "present", "mri": "vii_viii_enhancement",
     "csf": [{"cytology": "negative", "flow": "negative"}]},
    {"lineage": "B-ALL", "age_group": "child", "recent_vincristine": "no", "recent_hsct": "yes",
     "onset": "progressive", "laterality": "bilateral", "peripheral_nerves": "one_or_more", "vesicles": "absent",
     "otalgia": "present", "otoscopy": "abnormal", "mri": "facial_nerve_enhancement",
     "csf": [{"cytology": "negative", "flow": "negative"}]},
    {"lineage": "T-ALL", "recent_vincristine": "yes", "laterality": "unilateral", "eighth_nerve": "involved",
     "other_cranial_nerves": "one_or_more", "vesicles": "present", "otalgia": "absent", "otoscopy": "normal",
     "mri": "otomastoid_inflammation", "csf": [{"cytology": "negative", "flow": "negative"}]},
    {"lineage": "AML", "age_group": "child", "circulating_blasts": "absent", "onset": "acute",
     "laterality": "unilateral", "other_cranial_nerves": "one_or_more", "peripheral_nerves": "none",
     "vesicles": "present", "otalgia": "absent", "otoscopy": "abnormal",
     "csf": [{"cytology": "negative", "flow": "negative"}]},
    {"lineage": "AML", "age_group": "adult", "recent_vincristine": "yes", "recent_hsct": "yes",
     "circulating_blasts": "present", "laterality": "unilateral", "peripheral_nerves": "one_or_more",
     "vesicles": "present", "otoscopy": "abnormal", "csf": [{"cytology": "negative", "flow": "negative"}]},
    {"age_group": "adult", "circulating_blasts": "absent", "peripheral_nerves": "one_or_more", "vesicles": "present",
     "otoscopy": "normal", "mri": "vii_viii_enhancement", "csf": [{"cytology": "negative", "flow": "negative"}]},
    {"lineage": "AML", "recent_vincristine": "no", "recent_hsct": "yes", "circulating_blasts": "absent",
     "onset": "acute", "laterality": "unilateral", "eighth_nerve": "involved", "peripheral_nerves": "one_or_more",
     "vesicles": "present", "otalgia": "absent", "otoscopy": "normal", "mri": "vii_viii_enhancement",
     "csf": [{"cytology": "negative", "flow": "negative"}]},
    {"age_group": "child", "recent_vincristine": "yes", "circulating_blasts": "absent", "onset": "progressive",
     "other_cranial_nerves": "one_or_more", "peripheral_nerves": "one_or_more", "vesicles": "absent",
     "otalgia": "absent", "otoscopy": "abnormal", "mri": "otomastoid_inflammation"},
    {"lineage": "B-ALL", "age_group": "adult", "recent_vincristine": "yes", "laterality": "bilateral",
     "eighth_nerve": "none", "peripheral_nerves": "one_or_more", "vesicles": "present", "otalgia": "present",
     "csf": [{"cytology": "negative", "flow": "negative"}]},
]


def test_the_atypicality_tail_reports_its_monte_carlo_error_and_says_when_the_flag_is_within_it(draws_subtype, palsy,
                                                                                                 tmp_path):
    """The tail's reported Monte Carlo error is the spread its seed gives (pooled over three patients near the
    threshold and six seeds each), an answer within twice that error of the threshold says so, and the
    command's reading names it: "ATYPICAL ... within Monte Carlo error" or "NEARLY ATYPICAL"."""
    import numpy as np

    def distance(data: dict) -> float:  # chosen at a seed of its own, so that the check below (seed 0) can fail
        g = A.answer(F.parse_patient(data), draws_subtype, seed=7, shapley=False, next_tests=False,
                     rests_on=False).atypical
        return abs(g["tail_probability"] - g["threshold"]) / g["mc_error"]

    nearest = sorted(NEAR_THE_THRESHOLD, key=distance)[:3]
    assert distance(nearest[0]) <= 2.5, "no patient of NEAR_THE_THRESHOLD is near the threshold now: search again"
    spreads, errors = [], []
    for data in nearest:
        p = F.parse_patient(data)
        got = [A.answer(p, draws_subtype, seed=s, shapley=False, next_tests=False, rests_on=False).atypical
               for s in range(6)]
        tails = [g["tail_probability"] for g in got]
        spreads.append(np.var(tails, ddof=1))
        errors.append(np.mean([g["mc_error"] ** 2 for g in got]))
        for g in got:
            assert g["within_mc_error"] == (abs(g["tail_probability"] - g["threshold"]) <= 2 * g["mc_error"])
            assert 0 < g["mc_error"] < 0.005
    ratio = float(np.sqrt(np.mean(spreads) / np.mean(errors)))
    assert 0.4 < ratio < 2.5, ratio
    first = F.parse_patient(nearest[0])
    atyp = A.answer(first, draws_subtype, shapley=False, next_tests=False, rests_on=False).atypical
    assert atyp["within_mc_error"]
    path = tmp_path / "near.yaml"
    path.write_text(yaml.safe_dump(nearest[0]), encoding="utf-8")
    out = palsy("posterior", "--patient", str(path), "--variant", "subtype", check=True).stdout
    if atyp["flag"]:
        assert "ATYPICAL: these findings fit none" in out and "within Monte Carlo error of the threshold" in out
    else:
        assert "NEARLY ATYPICAL: these findings are at the edge" in out
    # the tail and the threshold are written with the digits that tell them apart (one digit writes both 1.0%)
    line = next(ln for ln in out.splitlines() if "ATYPICAL" in ln)
    tail, threshold = re.findall(r"(\d+\.\d+)%", line)[:2]
    assert tail != threshold and abs(float(tail) / 100 - atyp["tail_probability"]) < 10 ** -len(tail.split(".")[1]) / 100
