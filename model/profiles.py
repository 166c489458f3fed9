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
    base = (terms[0][:, :, None, None, None, None] + terms[1][None, None, :, None, None, None]
            + terms[2][None, None, None, :, None, None] + terms[3][None, None, None, None, :, None]
            + terms[4][None, None, None, None, None, :])
    base = base.reshape(-1, t.n, base.shape[-1]) + t.logw
    lp = {code: t.level_lp[:, :, S.LEVEL_INDEX[(S.csf_item(code.split(":")[1]), code.split(":")[0])]] for code in LP_CODES}
    seqs = np.stack([sum((lp[c] for c in seq), np.zeros_like(t.logw)) for seq in csf_sequences()])
    return base.astype(dtype), seqs.astype(dtype)


def _threads(fn, n_rows: int, chunk: int) -> None:
    """Run ``fn(start, stop)`` over row chunks on two threads (numpy releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as ex:
        list(ex.map(lambda i: fn(i, min(i + chunk, n_rows)), range(0, n_rows, chunk)))


def log_odds(t: A.Tables, chunk: int = 24) -> np.ndarray:
    """Log posterior odds (base profile, CSF sequence, draw) for every fully observed profile."""
    base, seqs = component_terms(t)
    prior = t.logit_prior.astype(np.float32)
    is_l = t.is_l
    out = np.empty((len(base), len(seqs), t.n), np.float32)
    if is_l.sum() == 1:  # independent: the log LR is additive across findings
        b = base[..., 0] - base[..., 1] + prior
        s = seqs[..., 0] - seqs[..., 1]

        def fill(i: int, j: int) -> None:
            np.add(b[i:j, None, :], s[None], out=out[i:j])
    else:
        # P(profile | k) = P(base | k) P(LPs | k): the mixture over L forms is a sum of products,
        # computed with each factor scaled by its largest form (no underflow in float32).
        lb, lsq = base[..., is_l], seqs[..., is_l]
        mb, ms = lb.max(axis=-1), lsq.max(axis=-1)
        eb, es = np.exp(lb - mb[..., None]), np.exp(lsq - ms[..., None])
        b = prior + mb - base[..., ~is_l][..., 0]
        s = ms - seqs[..., ~is_l][..., 0]

        def fill(i: int, j: int) -> None:
            acc = eb[i:j, None, :, 0] * es[None, :, :, 0]
            for k in range(1, eb.shape[-1]):
                acc += eb[i:j, None, :, k] * es[None, :, :, k]
            np.log(acc, out=acc)
            acc += b[i:j, None, :]
            acc += s[None]
            out[i:j] = acc
    _threads(fill, len(base), chunk)
    return out


def summaries(lo: np.ndarray, ci: float = 0.9, chunk: int = 2048) -> dict[str, np.ndarray]:
    """Mean of P, and median and interval via quantiles of the log odds (linear interpolation, as
    ``np.quantile``) then expit. Rows are sorted in chunks on two threads."""
    flat = lo.reshape(-1, lo.shape[-1])
    n = flat.shape[-1]
    pos = np.array([(1 - ci) / 2, 0.5, (1 + ci) / 2]) * (n - 1)
    lo_i, frac = np.floor(pos).astype(int), (pos - np.floor(pos)).astype(np.float32)
    hi_i = np.minimum(lo_i + 1, n - 1)
    mean = np.empty(len(flat))
    q = np.empty((3, len(flat)), np.float32)

    def run(i: int, j: int) -> None:
        srt = np.sort(flat[i:j], axis=-1)
        q[:, i:j] = (srt[:, lo_i] * (1 - frac) + srt[:, hi_i] * frac).T
        mean[i:j] = (1.0 / (1.0 + np.exp(-np.clip(srt, -40, 40)))).mean(axis=-1)

    _threads(run, len(flat), chunk)
    q = q.astype(float)
    return {"mean": mean, "lower": A.expit(q[0]), "median": A.expit(q[1]), "upper": A.expit(q[2])}


def patient(base_index: int, seq_index: int) -> F.Patient:
    """The patient of a profile (for checking against :func:`model.answer.answer`)."""
    values = dict(zip(BASE_FINDINGS, base_profiles()[base_index], strict=True))
    return F.parse_patient({**values, "csf": list(csf_sequences()[seq_index])})
