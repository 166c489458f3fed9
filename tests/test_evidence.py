import shutil

import pytest
import yaml

from model import evidence as E
from tests.conftest import FIXTURE_EVIDENCE, REPO


def test_real_priors_load_and_cite(evidence):
    assert len(evidence.cases) >= 30 and len(evidence.entries) >= 20
    for e in evidence.entries:
        assert e.kind == "expert_judgment" or e.refs, e.id
        if e.kind == "expert_judgment":
            assert e.raw.get("reasoning"), e.id
    for c in evidence.cases:
        assert c.proven_by and c.ref in evidence.references


def test_source_cases_are_library_cases(evidence):
    assert evidence.case("source-001").id.startswith("meqorali2025")
    assert evidence.case("source-002").id.startswith("esteller2022")


def _broken(tmp_path, file, mutate):
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    doc = yaml.safe_load((d / file).read_text())
    mutate(doc)
    (d / file).write_text(yaml.safe_dump(doc))
    return d


@pytest.mark.parametrize("file, mutate, expect", [
    ("cohorts.yaml", lambda d: d["entries"][0].update(x=2000), ["cohorts.yaml", "b_bilateral", "'x'", "2000"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(n=0), ["cohorts.yaml", "b_bilateral", "'n'"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(weight=1.5), ["b_bilateral", "'weight'", "1.5", "(0, 1]"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(ref="nobody1999"), ["'ref'", "nobody1999"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(level="trilateral"), ["'level'", "trilateral", "allowed"]),
    ("cohorts.yaml", lambda d: d["entries"][0].update(finding="age"), ["'finding'", "age", "allowed"]),
    ("cohorts.yaml", lambda d: d["entries"].append(dict(d["entries"][0], id="dup")), ["duplicate source"]),
    ("cohorts.yaml", lambda d: d["entries"].append(dict(d["entries"][2], id="ej2", kind="counts", ref="fixture2020",
                                                         x=1, n=10, weight=1, weight_reason="t")), ["expert judgment and counts"]),
    ("cohorts.yaml", lambda d: d["entries"][10].update(level="mass", of=None), ["not a node"]),
    ("cases.yaml", lambda d: d["cases"].append(dict(d["cases"][0])), ["cases.yaml", "duplicate case id"]),
    ("cases.yaml", lambda d: d["cases"][0]["findings"].update(mri="big"), ["case_a", "findings.mri", "big"]),
    ("cases.yaml", lambda d: d["cases"][0].update(proven_by=[]), ["case_a", "proven_by"]),
    ("model.yaml", lambda d: d.update(w_case=0), ["model.yaml", "w_case"]),
    ("pretest.yaml", lambda d: d["relapse_hazard"]["AML"].update(median=-1), ["relapse_hazard.AML", "median"]),
])
def test_broken_evidence_names_file_entry_field(tmp_path, file, mutate, expect):
    d = _broken(tmp_path, file, mutate)
    with pytest.raises(E.EvidenceError) as exc:
        E.load(d)
    msg = str(exc.value)
    for word in expect:
        assert word in msg, (word, msg)


def test_all_problems_in_one_error(tmp_path):
    def two(d):
        d["entries"][0].update(x=-1)
        d["entries"][1].update(weight=2)
    with pytest.raises(E.EvidenceError) as exc:
        E.load(_broken(tmp_path, "cohorts.yaml", two))
    assert len(exc.value.problems) == 2


def test_invalid_yaml_is_reported(tmp_path):
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    (d / "cases.yaml").write_text("cases: [\n  - id: x\n")
    with pytest.raises(E.EvidenceError, match="cases.yaml: not valid YAML"):
        E.load(d)


def test_hash_changes_with_content(tmp_path):
    d = tmp_path / "ev"
    shutil.copytree(FIXTURE_EVIDENCE, d)
    h = E.evidence_hash(d)
    (d / "model.yaml").write_text((d / "model.yaml").read_text().replace("w_case: 0.5", "w_case: 0.25"))
    assert E.evidence_hash(d) != h
    assert E.evidence_hash(REPO / "priors") == E.load(REPO / "priors").hash
