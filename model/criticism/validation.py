"""Discrimination and calibration on the validation split (``priors/validation.yaml``), numbers only.

Each scored case is a published patient with an established cause, kept out of the fit. Its coded
findings are answered like any patient (:func:`palsy.model.answer.answer`); context the patient schema
cannot carry (``partial``: "ALL" without T/B, remission without on/off treatment) is left out, so the
answer marginalises it over all its levels (wider than the case's truth: stated in the report).

Per case: P(true cause) (mean), the rank of the true cause, the log score; over the cases: the Brier
score of the differential and a reliability table, every (case, cause) pair binned by its predicted
probability against the share of pairs that were the true cause. With three scored cases this is far
too small to judge calibration: the report says so beside the numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from palsy.model import findings as F
from palsy.model.draws import Draws

BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
TOO_SMALL = 30  # below this many scored cases the split cannot judge calibration


def load(path: str | Path) -> list[dict[str, Any]]:
    """The scored cases of ``validation.yaml`` (id, ref, cause, patient, partial)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    doc = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader) or {}
    out = []
    for c in doc.get("cases") or []:
        patient = F.parse_patient({"id": c["id"], "description": f"validation case ({c['ref']})",
                                   **(c.get("findings") or {})}, f"{path}: {c['id']}")
        out.append({"id": c["id"], "ref": c["ref"], "cause": c["cause"], "patient": patient,
                    "partial": dict(c.get("partial") or {})})
    return out


def reliability(pred: np.ndarray, truth: np.ndarray, bins: tuple[float, ...] = BINS) -> list[dict[str, Any]]:
    """Predicted probabilities (pairs) binned against the observed share of truths per bin."""
    rows = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        m = (pred >= lo) & ((pred < hi) if hi < 1 else (pred <= hi))
        rows.append({"lower": lo, "upper": hi, "pairs": int(m.sum()),
                     "mean_predicted": float(pred[m].mean()) if m.any() else None,
                     "observed": float(truth[m].mean()) if m.any() else None})
    return rows


def score(cases: list[dict[str, Any]], draws: Draws) -> dict[str, Any]:
    """Per case P(true cause) and the calibration numbers (see the module docstring)."""
    from palsy.model.answer import answer

    rows, pred, truth = [], [], []
    for c in cases:
        ans = answer(c["patient"], draws)
        probs = {r["cause"]: r["probability"]["mean"] for r in ans.cause_summaries()}
        p_true = probs.get(c["cause"])
        ranked = sorted(probs, key=lambda k: -probs[k])
        rows.append({"id": c["id"], "ref": c["ref"], "cause": c["cause"], "p_true": p_true,
                     "rank": ranked.index(c["cause"]) + 1 if c["cause"] in ranked else None,
                     "leading_cause": ranked[0], "log_score": float(np.log(p_true)) if p_true else None,
                     "partial_ignored": c["partial"], "probabilities": probs})
        for k, p in probs.items():
            pred.append(p)
            truth.append(float(k == c["cause"]))
    pred_a, truth_a = np.array(pred), np.array(truth)
    n = len(rows)
    brier = float(np.mean([sum((r["probabilities"][k] - (k == r["cause"])) ** 2 for k in r["probabilities"])
                           for r in rows])) if rows else None
    return {"cases": rows, "n": n, "causes_covered": sorted({r["cause"] for r in rows}),
            "top1_accuracy": float(np.mean([r["rank"] == 1 for r in rows])) if rows else None,
            "mean_p_true": float(np.mean([r["p_true"] for r in rows])) if rows else None,
            "brier": brier, "reliability": reliability(pred_a, truth_a) if rows else [],
            "too_small": n < TOO_SMALL,
            "verdict": (f"{n} scored case(s) covering {len({r['cause'] for r in rows})} cause(s): far too few to judge "
                        f"discrimination or calibration (at least {TOO_SMALL} asked for); shown for transparency only.")
            if n < TOO_SMALL else f"{n} scored cases."}
