"""Issue 23: the registry format, its commands, the exported counts and the feedback loop (fast: no fit)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, run_palsy, write_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palsy.model import findings as F
from palsy.model import registry as RG
from palsy.model import registry_counts as RC
from palsy.model import registry_feedback as FB
from palsy.model import registry_summary as RS

FIX = REPO / "tests" / "fixtures" / "registry"


@pytest.fixture(scope="module")
def ev():
    from palsy.model import evidence as E

    return E.load(REPO / "priors")


def read(path, ev):
    return RG.read(path, ev.schema, ev.causes)


def write_rows(tmp_path: Path, rows: list[dict], name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"registry_version": 1, "rows": rows}, sort_keys=False))
    return path


BASE = {"site": "A", "period": "2024-05", "final_cause": "bell", "established_by": ["follow_up"],
        "lineage": "B-ALL", "laterality": "unilateral"}


# --- the format ---------------------------------------------------------------------------------

def test_csv_and_yaml_rows_are_patient_files(ev):
    """The same patients as CSV (LPs in csf_<n>_<key> columns) and as YAML read to the same findings."""
    y, c = read(FIX / "small.yaml", ev), read(FIX / "small.csv", ev)
    assert y.rows[0].patient.values == c.rows[0].patient.values
    assert y.rows[0].patient.csf == c.rows[0].patient.csf == (F.LP.of(cytology="negative", flow="negative", traumatic="no"),)
    lp = c.rows[2].patient.csf  # two LPs, the first traumatic, the second flow only
    assert lp == (F.LP.of(cytology="negative", flow="positive", traumatic="yes"), F.LP.of(flow="positive"))
    assert c.rows[1].established_by == ("pcr", "response")
    assert c.rows[4].cause == "other" and c.rows[4].other_text == "ATRA intracranial hypertension"
    assert c.rows[3].cause == "undetermined" and c.rows[3].patient.csf == (F.LP.of(flow="negative"),)
    # unknown is not negative: an empty cell is unknown
    assert c.rows[1].patient.values["recent_vincristine"] is None
    assert y.sites == ("A", "B") and len(y.hash) == 64


@pytest.mark.parametrize("change, field, words", [
    ({"final_cause": "bells"}, "final_cause", ["'bells'", "did you mean 'bell'", "undetermined"]),
    ({"period": "2024-05-17"}, "period", ["finer than a month", "YYYY-MM"]),
    ({"period": "May 2024"}, "period", ["'May 2024'", "YYYY-MM"]),
    ({"name": "J Smith"}, "name", ["identifying fields are not allowed", "de-identified"]),
    ({"date_of_birth": "2010-01-01"}, "date_of_birth", ["identifying fields are not allowed"]),
    ({"age": 7}, "age", ["identifying", "age_group"]),
    ({"mrn": "123456"}, "mrn", ["identifying"]),
    ({"id": "patient-7"}, "id", ["identifying"]),
    ({"lineage": "B_ALL"}, "lineage", ["'B_ALL'", "did you mean 'B-ALL'"]),
    ({"csf": [{"cytology": "pos"}]}, "csf[1].cytology", ["'pos'", "negative, positive"]),
    ({"established_by": ["biopsy"]}, "established_by", ["'biopsy'", "tissue"]),
    ({"established_by": None}, "established_by", ["missing", "tissue, csf, culture, pcr, response, follow_up"]),
    ({"final_cause": "other"}, "other_cause", ["missing"]),
    ({"final_cause": "other", "other_cause": "seen 12/03/2024"}, "other_cause", ["numbers of 3 or more digits"]),
    ({"other_cause": "ATRA"}, "other_cause", ["only for final_cause: other"]),
    ({"follow_up_months": -1}, "follow_up_months", ["-1", "0 to 600"]),
    ({"site": "Dr Jones's ward"}, "site", ["short code"]),
    ({"tool_probabilities": {"infiltration": 0.5}}, "tool_probabilities", ["for each of"]),
])
def test_bad_rows_are_named_by_row_field_value_and_allowed(ev, tmp_path, change, field, words):
    """Every problem names the file, the row, the field, the value and what is allowed (the command's exit
    status: test_registry_commands)."""
    rows = [dict(BASE), {**BASE, **change}]
    rows[1] = {k: v for k, v in rows[1].items() if v is not None}
    path = write_rows(tmp_path, rows)
    with pytest.raises(F.InputError) as exc:
        read(path, ev)
    msg = str(exc.value)
    assert str(path) in msg and "row 2" in msg and field in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    assert "row 1" not in msg


def test_csv_problems_name_the_line(ev, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("site,period,final_cause,established_by,lineage,csf_2_flow\n"
                    "A,2024-01,bell,follow_up,B-ALL,\n"
                    "A,2024-01,zoster,pcr,B-ALL,positive\n")
    with pytest.raises(F.InputError) as exc:
        read(path, ev)
    assert "row 2 (line 3)" in str(exc.value) and "without gaps" in str(exc.value)
    path.write_text("site,period,site\nA,2024-01,B\n")
    with pytest.raises(F.InputError, match="given twice"):
        read(path, ev)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20))
def test_only_the_schemas_findings_and_the_registrys_fields_exist(ev, tmp_path, key):
    """De-identified by construction: any other key is refused, naming it (a property over key names)."""
    allowed = set(ev.schema.findings) | set(RG.FIELDS)
    path = write_rows(tmp_path, [{**BASE, key: "x"}])
    if key in allowed:
        return
    with pytest.raises(F.InputError) as exc:
        read(path, ev)
    assert repr(key) in str(exc.value) and "row 1" in str(exc.value)


def test_rows_outside_the_population_and_other_causes_are_counted_not_fitted(ev):
    from palsy.model import registry_fit as RF

    reg = RG.from_mappings([("row 1", BASE), ("row 2", {**BASE, "forehead": "spared"}),
                            ("row 3", {**BASE, "final_cause": "other", "other_cause": "Lyme disease"}),
                            ("row 4", {**BASE, "remission": "at_diagnosis"})], ev.schema, ev.causes, source="t")
    counts, other = RF.row_counts(reg)
    assert counts == {"rows": 4, "fitted": 1, "modelled": 1, "undetermined": 0, "other": 1, "out_of_scope": 2}
    assert other == {"Lyme disease": 1}
    assert [r.number for r in reg.fitted_rows] == [1]


# --- summary and the selection check -----------------------------------------------------------------

def test_summary_counts_by_hand(ev):
    reg = read(FIX / "small.yaml", ev)
    s = RS.summary(reg)
    assert s["rows"] == 8 and s["causes"]["bell"] == 1 and s["causes"]["undetermined"] == 1 and s["causes"]["other"] == 1
    assert s["sites"] == {"A": {"bell": 1, "zoster": 1, "infiltration": 1, "gbs": 1},
                          "B": {"vincristine": 1, "undetermined": 1, "other": 1, "otomastoiditis": 1}}
    assert s["completeness"]["lineage"] == 1.0 and s["completeness"]["csf"] == 4 / 8
    assert s["levels"]["laterality"]["bilateral"] == {"infiltration": 1, "vincristine": 1, "gbs": 1}
    assert s["follow_up_months"] == {"known": 5, "unknown": 3, "median": 3, "min": 1, "max": 12}
    assert s["lps_per_row"] == {0: 4, 1: 4}


def _sim(ev, n, seed, sites=("A", "B", "C"), miscode=None):
    from palsy.model import design as D
    from palsy.model import prior as P
    from palsy.model import registry_simulate as SIM

    d = D.build(ev, ev.variant("subtype"))
    truth = SIM.one_draw(P.draws(d, 1, np.random.default_rng(seed)), 0)
    reg = SIM.simulate(truth, d.rates, ev.schema, ev.causes, d.variant.components, d.variant.component_causes, n,
                       list(sites), 0.3, np.random.default_rng(seed + 1), miscode=miscode)
    return reg, truth, d


def test_a_registry_of_one_cause_is_warned_about_and_an_unselected_one_is_not(ev, tmp_path):
    rows = [{**BASE, "final_cause": "infiltration", "established_by": ["csf"], "lineage": lin}
            for lin in ("T-ALL", "B-ALL", "AML", "T-ALL", "B-ALL", "AML") * 5]
    path = write_rows(tmp_path, rows)
    reg = read(path, ev)
    warns = RS.selection_warnings(reg, RS.rate_arrays(ev), ev.structure, 0.5, 0.005)
    assert any("all 30 rows" in w for w in warns)
    assert any(w.startswith("infiltration: 30 of 30 rows, more than") for w in warns)
    # a registry drawn from a prior draw (unselected by construction) is not warned about
    unselected, _, _ = _sim(ev, 60, 11)
    assert RS.selection_warnings(unselected, RS.rate_arrays(ev), ev.structure, 0.5, 0.005) == []


# --- exported counts -----------------------------------------------------------------------------

def _published(counts):
    """Every exact number the counts file publishes about patients (cells and totals)."""
    out = []
    for site in counts["sites"].values():
        for k in ("rows", "other", "undetermined", "out_of_scope", "causes_not_shared", "findings_withheld"):
            out.append(site[k])
        for s in site["strata"]:
            out.append(s.get("total", 0))
            out += list((s.get("causes") or {}).values())
            out += [c["count"] for c in s["findings"]]
    return out


@pytest.mark.parametrize("threshold", [3, 5, 10])
def test_exported_counts_never_publish_a_small_number(ev, threshold):
    reg, _, _ = _sim(ev, 150, 3)
    counts = json.loads(RC.to_bytes(RC.export(reg, ev.schema, threshold)))
    for x in _published(counts):
        assert isinstance(x, dict) or x == 0 or x >= threshold, x
    for site in counts["sites"].values():
        for s in site["strata"]:
            hidden = [c for c, v in (s.get("causes") or {}).items() if isinstance(v, dict)]
            assert len(hidden) != 1, s  # complementary suppression: no count recoverable by subtraction
    # every patient with a modelled cause is in a cause table, or counted as not shared
    modelled = sum(r.modelled and r.in_scope for r in reg.rows)
    shared = sum(s.get("total", 0) for site in counts["sites"].values() for s in site["strata"])
    not_shared = [site["causes_not_shared"] for site in counts["sites"].values()]
    assert shared + sum(x for x in not_shared if isinstance(x, int)) <= modelled
    assert shared >= modelled - len(counts["sites"]) * threshold


def test_registry_commands(ev, tmp_path):
    """check: bad input exits 2 naming the row and field (no traceback, nothing on stdout); a selected-looking
    registry is valid with a warning (exit 0); summary --json; export-counts writes its file, or nothing."""
    bad = write_rows(tmp_path, [BASE, {**BASE, "period": "2024-05-17"}], "bad.yaml")
    proc = run_palsy("registry", "check", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "row 2" in proc.stderr
    assert "period" in proc.stderr and proc.stdout == ""
    selected = write_rows(tmp_path, [{**BASE, "final_cause": "infiltration", "established_by": ["csf"]}] * 12, "sel.yaml")
    proc = run_palsy("registry", "check", str(selected))
    assert proc.returncode == 0 and "valid: 12 rows" in proc.stdout and "warning: all 12 rows" in proc.stdout
    proc = run_palsy("registry", "summary", str(FIX / "small.yaml"), "--json", check=True)
    assert json.loads(proc.stdout)["causes"] == RS.summary(read(FIX / "small.yaml", ev))["causes"]
    assert "final cause:" in "\n".join(__import__("palsy.scripts.commands.registry", fromlist=["x"]).summary_lines(
        {**RS.summary(read(FIX / "small.csv", ev)), "warnings": []}))
    out = tmp_path / "sub" / "counts.json"
    proc = run_palsy("registry", "export-counts", str(FIX / "small.yaml"), "--out", str(out), "--threshold", "3",
                     check=True)
    assert "wrote" in proc.stdout
    data = json.loads(out.read_text())
    assert data["format"] == RC.FORMAT and data["threshold"] == 3 and set(data["sites"]) == {"A", "B"}
    bad = run_palsy("registry", "export-counts", str(FIX / "small.yaml"), "--out", str(tmp_path / "x.json"),
                    "--threshold", "0")
    assert bad.returncode == 2 and not (tmp_path / "x.json").exists() and "Traceback" not in bad.stderr


def test_completions_are_every_consistent_vector():
    comp = RC.completions([(1, 4), (0, 0), (1, 4), (7, 7)], 12)
    assert sorted(comp) == sorted((a, 0, 5 - a, 7) for a in range(1, 5))
    assert RC.completions([(3, 3)], 4) == []


def test_a_counts_file_with_problems_is_refused_naming_them(ev, tmp_path):
    good = RC.export(read(FIX / "small.yaml", ev), ev.schema, 1)
    bad = json.loads(json.dumps(good))
    s = bad["sites"]["A"]["strata"][0]
    s["total"] += 1
    s["findings"].append({"cause": "flu", "findings": {}, "count": 2})
    path = tmp_path / "c.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(F.InputError) as exc:
        RC.read(path, ev.schema, ev.causes, 0.5)
    assert "sites.A.strata[1]" in str(exc.value) and "not the total" in str(exc.value)
    assert "'flu'" in str(exc.value)


# --- the feedback loop ---------------------------------------------------------------------------

def _answer(probs, ev):
    return {"causes": [{"cause": c, "probability": {"mean": p}} for c, p in zip(ev.causes, probs, strict=True)],
            "model": {"variant": "subtype", "evidence_hash": "abc", "version": "0.1.0"}}


def test_feedback_log_and_adjudication_become_registry_rows(ev, tmp_path):
    """The service's answers (findings, probabilities) and outcomes in its log, a clinician's adjudication of
    two of three answers: two registry rows, with the month of the answer as the period and what the tool
    said; the template lists every answer."""
    answers = [("c1", F.parse_patient({"lineage": "T-ALL", "laterality": "bilateral", "csf": ["cytology=positive"]}),
                (0.7, 0.1, 0.1, 0.05, 0.03, 0.02), 1.7e9),
               ("c2", F.parse_patient({"lineage": "B-ALL", "vesicles": "present"}), (0.1, 0.1, 0.7, 0.05, 0.03, 0.02),
                1.71e9),
               ("c3", F.parse_patient({"lineage": "AML"}), (0.3, 0.3, 0.2, 0.1, 0.05, 0.05), 1.72e9)]
    log = tmp_path / "feedback.jsonl"
    lines = [FB.answer_entry(c, "h" + c, p, _answer(pr, ev), "palsy-facial-palsy", now=t) for c, p, pr, t in answers]
    lines.append({"received": "2023-11-14T00:00:00Z", "service": "x", "card": "c1", "outcome": "accepted",
                  "outcomeTimestamp": "2023-11-14T00:00:00Z"})
    lines.append({"received": "2024-03-01T00:00:00Z", "service": "x", "card": "c2", "outcome": "overridden",
                  "outcomeTimestamp": "2024-03-01T00:00:00Z", "hasComment": True,
                  "overrideReason": {"system": "urn:palsy:override-reason", "code": "record-incomplete"}})
    lines.append({"received": "2024-03-02T00:00:00Z", "service": "x", "card": "c3", "outcome": "overridden",
                  "outcomeTimestamp": "2024-03-02T00:00:00Z"})
    log.write_text("".join(json.dumps(e) + "\n" for e in lines))
    form = tmp_path / "form.csv"
    run_palsy("registry", "from-feedback", str(log), "--template", str(form), check=True)
    with open(form, newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["card"] for r in table] == ["c1", "c2", "c3"]
    # the outcome, and why a card was dismissed when the clinician said
    assert [r["outcome"] for r in table] == ["accepted", "overridden: record-incomplete", "overridden"]
    assert table[0]["leading_cause"] == "infiltration" and table[0]["month"] == "2023-11"
    table[0].update(final_cause="infiltration", established_by="csf", follow_up_months="6")
    table[1].update(final_cause="zoster", established_by="pcr")
    write_csv(form, table)
    out = tmp_path / "reg.yaml"
    run_palsy("registry", "from-feedback", str(log), str(form), "--site", "north", "--out", str(out), check=True)
    reg = read(out, ev)
    assert [r.cause for r in reg.rows] == ["infiltration", "zoster"]
    assert reg.rows[0].period == "2023-11" and reg.rows[0].site == "north" and reg.rows[0].follow_up_months == 6
    assert reg.rows[0].patient.csf == (F.LP.of(cytology="positive"),)
    assert reg.rows[1].tool_probabilities["zoster"] == pytest.approx(0.7)
    text = out.read_text()
    assert "hc1" not in text and "c1" not in text  # neither the patient's hash nor the card's id


def test_an_adjudication_of_an_unknown_card_is_refused(ev, tmp_path):
    log = tmp_path / "feedback.jsonl"
    log.write_text(json.dumps(FB.answer_entry("c1", "h", F.parse_patient({}), _answer([1 / 6] * 6, ev), "s")) + "\n")
    adj = tmp_path / "adj.yaml"
    adj.write_text(yaml.safe_dump({"adjudications": [{"card": "zz", "final_cause": "bell", "established_by": "follow_up"}]}))
    with pytest.raises(F.InputError, match="'zz' is not in the feedback log"):
        FB.rows(FB.read_log(log, ev.schema, ev.causes), FB.read_adjudication(adj, ev.causes), "A", ev.schema, ev.causes)


def test_an_adjudication_with_the_card_in_upper_case_is_its_card(ev, tmp_path):
    """A spreadsheet that upper-cases the card's UUID: it is the log's card (the service writes the lower-case form;
    s16 attack review U11 had it 'not in the feedback log')."""
    card = "339c3e3e-1b2a-4c5d-8e9f-0a1b2c3d4e5f"
    log = tmp_path / "feedback.jsonl"
    log.write_text(json.dumps(FB.answer_entry(card, "h", F.parse_patient({}), _answer([1 / 6] * 6, ev), "s")) + "\n")
    adj = tmp_path / "adj.yaml"
    adj.write_text(yaml.safe_dump({"adjudications": [{"card": f" {card.upper()} ", "final_cause": "bell",
                                                      "established_by": "follow_up"}]}))
    reg = FB.rows(FB.read_log(log, ev.schema, ev.causes), FB.read_adjudication(adj, ev.causes), "A", ev.schema, ev.causes)
    assert [r.cause for r in reg.rows] == ["bell"]


def test_calibration_of_the_tools_answers_by_hand(ev):
    from palsy.model.criticism import registry as CRG

    rows = []
    for cause, p_inf, period in (("infiltration", 0.8, "2023-01"), ("bell", 0.2, "2023-06"), ("bell", 0.05, "2024-02")):
        rest = (1 - p_inf) / 5
        probs = {c: (p_inf if c == "infiltration" else rest) for c in ev.causes}
        rows.append((period, {**BASE, "period": period, "final_cause": cause, "tool_probabilities": probs}))
    reg = RG.from_mappings(rows, ev.schema, ev.causes, source="t")
    cal = CRG.calibration(reg)
    p_true = np.array([0.8, 0.16, 0.19])
    assert cal["rows"] == 3 and cal["mean_p_true"] == pytest.approx(p_true.mean())
    assert cal["log_score"] == pytest.approx(-np.log(p_true).mean())
    brier0 = 0.2 ** 2 + 5 * 0.04 ** 2
    assert cal["by_year"]["2023"]["rows"] == 2 and cal["by_year"]["2024"]["top1_accuracy"] == 1.0
    assert cal["brier"] > 0 and cal["by_year"]["2023"]["brier"] > brier0 / 2
    assert [b["rows"] for b in cal["infiltration_bins"]] == [1, 1, 1]
    assert Counter(r.cause for r in reg.rows) == {"bell": 2, "infiltration": 1}
