"""Every fully observed profile at once (DESIGN §8): lineage x remission x laterality x other
cranial nerves x peripheral nerves x MRI x up to three LPs (each negative/positive by cytology/flow)
= 32,640 profiles, log odds per draw. Pure numpy, vectorised by broadcasting.
"""

from __future__ import annotations

import itertools

import numpy as np

from model import answer as A
from model import findings as F
from model import structure as S

BASE_FINDINGS = ("lineage", "remission", "laterality", "other_cranial_nerves", "peripheral_nerves", "mri")
LP_CODES = tuple(f"{r}:{m}" for m in F.CSF_METHODS for r in F.CSF_RESULTS)


def csf_sequences(max_lps: int = 3) -> list[tuple[str, ...]]:
    """Every LP sequence of length 0..max_lps (85 for three)."""
    return [seq for k in range(max_lps + 1) for seq in itertools.product(LP_CODES, repeat=k)]


def base_profiles() -> list[tuple[str, ...]]:
    """Every combination of the non-CSF findings (384)."""
    return list(itertools.product(*(F.LEVELS[f] for f in BASE_FINDINGS)))


def component_terms(t: A.Tables, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Per-component log probabilities: base profiles (base, draw, K) and CSF sequences (seq, draw, K)."""
    lin = np.stack([t.stratum_term(lv, rv) for lv in S.LINEAGES for rv in S.REMISSIONS])  # (12, D, K)
    terms = [lin.reshape(len(S.LINEAGES), len(S.REMISSIONS), t.n, -1)]
    for name in BASE_FINDINGS[2:]:
        terms.append(np.stack([t.level_lp[:, :, S.LEVEL_INDEX[(name, lv)]] for lv in F.LEVELS[name]]))
    base = terms[0][:, :, None, None, None, None]
    base = (terms[0][:, :, None, None, None, None] + terms[1][None, None, :, None, None, None]
            + terms[2][None, None, None, :, None, None] + terms[3][None, None, None, None, :, None]
            + terms[4][None, None, None, None, None, :])
    base = base.reshape(-1, t.n, base.shape[-1]) + t.logw
    lp = {code: t.level_lp[:, :, S.LEVEL_INDEX[(S.csf_item(code.split(":")[1]), code.split(":")[0])]] for code in LP_CODES}
    seqs = np.stack([sum((lp[c] for c in seq), np.zeros_like(t.logw)) for seq in csf_sequences()])
    return base.astype(dtype), seqs.astype(dtype)


def log_odds(t: A.Tables, chunk: int = 16) -> np.ndarray:
    """Log posterior odds (base profile, CSF sequence, draw) for every fully observed profile."""
    base, seqs = component_terms(t)
    prior = t.logit_prior.astype(np.float32)
    is_l = t.is_l
    if is_l.sum() == 1:  # independent: the log LR is additive across findings
        b = base[..., 0] - base[..., 1]
        s = seqs[..., 0] - seqs[..., 1]
        return (b + prior)[:, None, :] + s[None, :, :]
    out = np.empty((len(base), len(seqs), t.n), np.float32)
    for i in range(0, len(base), chunk):
        a = base[i:i + chunk, None] + seqs[None]  # (c, seq, D, K)
        m = a[..., is_l].max(axis=-1, keepdims=True)
        ll = m[..., 0] + np.log(np.exp(a[..., is_l] - m).sum(axis=-1))
        out[i:i + chunk] = prior + ll - a[..., ~is_l][..., 0]
    return out


def summaries(lo: np.ndarray, ci: float = 0.9) -> dict[str, np.ndarray]:
    """Mean of P, and median and interval via quantiles of the log odds then expit."""
    flat = lo.reshape(-1, lo.shape[-1])
    q = np.quantile(flat, [(1 - ci) / 2, 0.5, (1 + ci) / 2], axis=-1)
    p = A.expit(flat)
    return {"mean": p.mean(axis=-1), "lower": A.expit(q[0]), "median": A.expit(q[1]), "upper": A.expit(q[2])}


def patient(base_index: int, seq_index: int) -> F.Patient:
    """The patient of a profile (for checking against :func:`model.answer.answer`)."""
    values = dict(zip(BASE_FINDINGS, base_profiles()[base_index]))
    return F.parse_patient({**values, "csf": list(csf_sequences()[seq_index])})
