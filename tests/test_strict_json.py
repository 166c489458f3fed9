"""s16 review: JSON read strictly (``palsy.model.safe_json``) by ``--fhir`` (S6, S7), a bad ``$PALSY_PRIORS`` named
as a bad ``--priors`` is (S10), and the service's feedback log never left with a torn line (S8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from palsy.model import safe_json as J
from tests.conftest import PATIENTS, REPO, run_palsy


def _with_a_key_twice(tmp_path):
    """source-002's bundle whose first CSF cytology carries its value twice: positive, then negative."""
    bundle = json.loads((PATIENTS / "source-002.fhir.json").read_text())
    i, res = next((i, e["resource"]) for i, e in enumerate(bundle["entry"]) if "valueCodeableConcept" in e["resource"])
    value = json.dumps(res["valueCodeableConcept"])
    text = json.dumps(bundle)
    twice = text.replace(f'"valueCodeableConcept": {value}',
                         f'"valueCodeableConcept": {value}, "valueCodeableConcept": {value}', 1)
    assert twice != text
    path = tmp_path / "twice.fhir.json"
    path.write_text(twice)
    return path, i, res["resourceType"]


def test_a_fhir_file_with_a_key_given_twice_is_refused_naming_where(tmp_path):
    """s16 S6: ``json.loads`` kept the last of a key given twice, so a positive cytology followed by a negative one
    was read as negative without a word; now exit 2 naming the file, the object and the key."""
    path, i, kind = _with_a_key_twice(tmp_path)
    proc = run_palsy("posterior", "--fhir", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    assert f"{path}: invalid input" in proc.stderr
    assert (f"entry[{i}].resource (resourceType {kind}): the key 'valueCodeableConcept' is given twice in one "
            f"object") in " ".join(proc.stderr.split())


@pytest.mark.parametrize(("content", "says"), [
    ('{"resourceType": "Bundle", "type": "collection", "total": ' + "9" * 5001 + "}",
     "a number of more than 4300 digits"),
    ("[" * 20_000 + "]" * 20_000, "nested too deep"),
    ('{"resourceType": "Bundle", "total": NaN}', "NaN is not a JSON number"),
    ('{"resourceType": "Bundle",', "not JSON: Expecting property name enclosed in double quotes (line 1, column 27)"),
], ids=["bigint", "deep", "nan", "truncated"])
def test_a_fhir_file_python_cannot_read_as_json_is_bad_input_not_an_internal_error(tmp_path, content, says):
    """s16 S7: a number over 4300 digits (ValueError) or nesting deep enough for RecursionError were ``internal
    error``, exit 1; now exit 2 naming the file and the problem."""
    path = tmp_path / "bundle.fhir.json"
    path.write_text(content)
    proc = run_palsy("posterior", "--fhir", str(path))
    assert proc.returncode == 2 and "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert f"{path}: invalid input" in proc.stderr and says in proc.stderr, proc.stderr


def test_strict_json_reads_what_json_reads_and_names_the_path_of_a_key_given_twice():
    text = (PATIENTS / "source-001.fhir.json").read_text()
    assert J.loads(text) == json.loads(text) and J.loads(text.encode("utf-16")) == json.loads(text)
    with pytest.raises(J.JSONInputError) as got:
        J.loads('{"a": [{"b": {"c": 1, "d": {"x": 1, "x": 2}}}]}')
    assert got.value.detail.startswith("a[0].b.d: the key 'x' is given twice in one object")
    with pytest.raises(J.JSONInputError, match="^the top-level object: the key 'k' is given twice"):
        J.loads('{"k": 1, "k": 1}')


@pytest.mark.parametrize("value", ["{missing}", "{file}"])
def test_a_bad_palsy_priors_is_bad_input_like_a_bad_priors_flag(tmp_path, value):
    """s16 S10: a ``$PALSY_PRIORS`` that is not a folder failed while the parser was built: ``palsy: internal
    error: EvidenceError: invalid evidence:\\n ...`` (a literal \\n), exit 1. Now exit 2 with a clean message naming
    the variable and the value."""
    (tmp_path / "file").write_text("x")
    given = value.format(missing=tmp_path / "missing", file=tmp_path / "file")
    proc = run_palsy("posterior", "--lineage", "AML", env={"PALSY_PRIORS": given})
    assert proc.returncode == 2, proc.stderr
    assert "internal error" not in proc.stderr and "\\n" not in proc.stderr and "Traceback" not in proc.stderr
    assert f"$PALSY_PRIORS: {given!r} is not a folder; give the evidence folder" in proc.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE as a full disk: Linux")
def test_a_feedback_append_that_fails_part_way_leaves_no_torn_line(tmp_path):
    """s16 S8: an append that failed part-way (a full disk, here the file-size limit reached 100 bytes into the
    line, as the review did) left the partial line in the log; the next append glued onto it and ``palsy registry
    from-feedback`` refused the whole log. Now the failed append is cut back to where it began."""
    code = f"""
import json, os, resource
from palsy.scripts.serve.store import FeedbackLog
log = FeedbackLog({str(tmp_path)!r})
entry = {{"card": "11111111-1111-1111-1111-111111111111", "outcome": "accepted", "pad": "x" * 300}}
log.append([entry])
size = os.path.getsize(log.path)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
try:
    log.append([entry, entry])
    print("appended")
except OSError as exc:
    print("failed", exc.errno, os.path.getsize(log.path) == size)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.append([entry])
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["failed", "27", "True"]  # EFBIG, and the log back to its size
    lines = (tmp_path / "feedback.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 3
    assert all(json.loads(line)["outcome"] == "accepted" for line in lines[:-1])


def test_a_feedback_append_whose_write_fails_is_cut_back(tmp_path, monkeypatch):
    """The same on any platform: ``os.write`` writes part of the line and then fails (ENOSPC)."""
    import errno

    from palsy.scripts.serve import store

    log = store.FeedbackLog(tmp_path)
    log.append([{"card": "first"}])
    before = log.path.read_bytes()
    real = os.write

    def partial(fd, data):
        real(fd, bytes(data[:7]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store.os, "write", partial)
    with pytest.raises(OSError):
        log.append([{"card": "second"}])
    monkeypatch.undo()
    assert log.path.read_bytes() == before
    log.append([{"card": "third"}])
    assert [json.loads(line)["card"] for line in log.path.read_text().splitlines()] == ["first", "third"]
