"""Clinical sanity, each tied to a claim of the source documents (../shared/sources/)."""

import pytest

from model import answer as A
from model import findings as F
from scripts.commands.common import read_patient_file
from tests.conftest import PATIENTS


@pytest.fixture(params=["independent", "subtype"], scope="module")
def draws(request):
    return request.getfixturevalue(f"draws_{request.param}")


def test_bilateral_involvement_multiplies_the_odds(draws):
    """Source 000: 'Bilateral involvement is a major red flag'."""
    a = A.answer(F.parse_patient({"laterality": "bilateral"}), draws)
    lr = a.contributions[0]["log_lr"]
    assert A.math.exp(lr["median"]) > 5 and A.math.exp(lr["lower"]) > 1.5


def test_one_negative_cytology_does_not_exclude_in_high_pretest(draws):
    """Source 000: 'Do not rely on single negative CSF examination'."""
    p = F.parse_patient(read_patient_file(PATIENTS / "source-000-vignette.yaml"))
    a = A.answer(p, draws)
    lp = [c for c in a.contributions if c["finding"] == "csf"][0]
    assert lp["log_lr"]["median"] < 0  # it lowers the odds...
    assert a.probability["mean"] > 0.5 and a.probability["lower"] > 0.2  # ...but leaves P(L) well above zero


def test_remission_lowers_but_does_not_remove_risk(draws):
    """Source 000/002: 'maintain high suspicion even in patients in apparent remission'."""
    active = A.answer(F.parse_patient({"lineage": "T-ALL", "remission": "not_in_remission"}), draws)
    off = A.answer(F.parse_patient({"lineage": "T-ALL", "remission": "remission_off_treatment"}), draws)
    assert off.probability["mean"] < active.probability["mean"]
    assert off.probability["mean"] > 0.3 and off.probability["lower"] > 0.05


def test_source_001_comes_out_near_certain(draws):
    """Source 001: bilateral VII + IX, multiple enhancing nerves despite negative cytology."""
    p = F.parse_patient(read_patient_file(PATIENTS / "source-001.yaml"))
    a = A.answer(p, draws)
    assert a.left_out is not None  # the library's own copy of this case is left out
    assert a.probability["mean"] > 0.99


def test_source_002_negative_lps_do_not_exclude(draws):
    """Source 002: two negative LPs, yet infiltration (mass, peripheral nerves)."""
    p = F.parse_patient(read_patient_file(PATIENTS / "source-002.yaml"))
    assert A.answer(p, draws).probability["mean"] > 0.9
