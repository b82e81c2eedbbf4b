"""Detection agreement with reference nodules: hits, precision/recall/F1 and FROC (LUNA16 style), in LPS mm.

A detection *hits* a reference nodule when its centre lies within the nodule's radius: the distance
between the detection's centre and the nodule's centre (mm, LPS) is at most ``diameter_mm / 2``.

* Each reference counts as a true positive at most once; its match is the highest-scoring detection
  inside it (ties: the first listed).
* Further detections inside an already-hit reference are *ignored*: neither true nor false positives,
  as the LUNA16 evaluation does. A detection inside two overlapping references hits both.
* A detection inside no reference is a false positive; a reference with no detection inside is a
  false negative.

Zero cases, chosen so that nothing divides by zero and every figure stays a number JSON can hold:
precision is 1.0 when nothing is detected (no detection was wrong); recall is 1.0 when there is no
reference (nothing was missed); F1 is 0.0 when precision + recall is 0. The FROC's sensitivity is
likewise 1.0 when the cases hold no reference at all.

FROC: the operating points are every distinct detection score, used as a threshold (a detection counts
when ``score >= threshold``); at each, sensitivity = hit references / all references and FP per scan =
false positives / number of cases. The sensitivity at a requested FP rate is read *step-wise*: the best
sensitivity among the operating points whose FP per scan does not exceed the rate (0.0 when none does).
The LUNA16 script interpolates linearly between operating points instead, which can only give the same
or higher values. The CPM is the mean of the sensitivities at the requested rates.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

LUNA16_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass(frozen=True)
class ReferenceNodule:
    center_lps: tuple[float, float, float]
    diameter_mm: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "center_lps", _point(self.center_lps))
        d = float(self.diameter_mm)
        if not math.isfinite(d) or d < 0:
            raise ValueError(f"a reference nodule's diameter must be a non-negative number, got {self.diameter_mm!r}")
        object.__setattr__(self, "diameter_mm", d)


@dataclass(frozen=True)
class ScoredDetection:
    center_lps: tuple[float, float, float]
    score: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "center_lps", _point(self.center_lps))
        s = float(self.score)
        if math.isnan(s):
            raise ValueError("a detection's score is NaN")
        object.__setattr__(self, "score", s)


def _point(value) -> tuple[float, float, float]:
    p = tuple(float(v) for v in value)
    if len(p) != 3 or not all(math.isfinite(v) for v in p):
        raise ValueError(f"a centre is three finite LPS coordinates (mm), got {value!r}")
    return p


def as_reference(item) -> ReferenceNodule:
    """A ReferenceNodule from itself, ``(centre, diameter)``, an object with ``center_lps`` and ``diameter_mm``
    (e.g. ``ai.api.Detection``) or a mapping with ``center_lps_mm`` (or ``center_lps``) and ``diameter_mm``."""
    if isinstance(item, ReferenceNodule):
        return item
    if isinstance(item, Mapping):
        return ReferenceNodule(item.get("center_lps_mm", item.get("center_lps")), item["diameter_mm"])
    if hasattr(item, "center_lps") and hasattr(item, "diameter_mm"):
        return ReferenceNodule(item.center_lps, item.diameter_mm)
    centre, diameter = item
    return ReferenceNodule(centre, diameter)


def as_detection(item) -> ScoredDetection:
    """A ScoredDetection from itself, ``(centre, score)``, an object with ``center_lps`` and ``score`` or a mapping
    with ``center_lps_mm`` (or ``center_lps``) and ``score`` (1.0 when the mapping has none)."""
    if isinstance(item, ScoredDetection):
        return item
    if isinstance(item, Mapping):
        return ScoredDetection(item.get("center_lps_mm", item.get("center_lps")), item.get("score", 1.0))
    if hasattr(item, "center_lps") and hasattr(item, "score"):
        return ScoredDetection(item.center_lps, item.score)
    centre, score = item
    return ScoredDetection(centre, score)


@dataclass(frozen=True)
class Match:
    detection: int  # index into the detections given
    reference: int  # index into the references given
    distance_mm: float
    score: float


@dataclass(frozen=True)
class DetectionMetrics:
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    f1: float
    matches: tuple[Match, ...] = ()
    ignored: int = 0  # detections inside an already-hit reference (neither TP nor FP)
    n_detections: int = 0  # detections with score >= min_score
    n_references: int = 0
    min_score: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["matches"] = [dict(m) for m in d["matches"]]
        return d


def _geometry(dets: Sequence[ScoredDetection], refs: Sequence[ReferenceNodule]) -> tuple[np.ndarray, np.ndarray]:
    """``(distance (n_det, n_ref) mm, inside (n_det, n_ref) bool)``."""
    if not dets or not refs:
        empty = np.zeros((len(dets), len(refs)))
        return empty, empty.astype(bool)
    c_d = np.array([d.center_lps for d in dets])
    c_r = np.array([r.center_lps for r in refs])
    dist = np.linalg.norm(c_d[:, None, :] - c_r[None, :, :], axis=2)
    return dist, dist <= np.array([r.diameter_mm / 2.0 for r in refs])[None, :]


def _ratios(tp: int, fp: int, n_refs: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / n_refs if n_refs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def detection_metrics(dets, refs, min_score: float = 0.0) -> DetectionMetrics:
    """Match ``dets`` (centre + score) to ``refs`` (centre + diameter); detections below ``min_score`` are left out.

    See the module docstring for the matching rules and the zero cases.
    """
    all_dets = [as_detection(d) for d in dets]
    refs = [as_reference(r) for r in refs]
    kept = [i for i, d in enumerate(all_dets) if d.score >= min_score]
    dets = [all_dets[i] for i in kept]
    dist, inside = _geometry(dets, refs)
    matches, matched = [], set()
    for j in range(len(refs)):
        hits = np.flatnonzero(inside[:, j])
        if hits.size:
            best = int(hits[np.argmax([dets[i].score for i in hits])])
            matches.append(Match(kept[best], j, float(dist[best, j]), dets[best].score))
            matched.add(best)
    fp = int(np.count_nonzero(~inside.any(axis=1))) if dets else 0
    tp = len(matches)
    ignored = len(dets) - fp - len(matched)
    precision, recall, f1 = _ratios(tp, fp, len(refs))
    return DetectionMetrics(tp, fp, len(refs) - tp, precision, recall, f1, tuple(matches), ignored, len(dets),
                            len(refs), float(min_score))


@dataclass(frozen=True)
class FrocResult:
    thresholds: tuple[float, ...]  # distinct detection scores, highest first
    sensitivities: tuple[float, ...]  # at each threshold
    fps_per_scan: tuple[float, ...]  # at each threshold
    fp_rates: tuple[float, ...]  # the requested FP-per-scan rates
    sensitivity_at: tuple[float, ...]  # step-wise sensitivity at each requested rate
    cpm: float  # mean of ``sensitivity_at``
    n_scans: int
    n_references: int
    n_detections: int

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def froc(cases, fp_per_scan=LUNA16_FP_RATES) -> FrocResult:
    """FROC over ``cases``, a list of ``(detections, references)`` per scan; see the module docstring."""
    cases = list(cases)
    if not cases:
        raise ValueError("a FROC needs at least one case (scan)")
    rates = tuple(float(r) for r in fp_per_scan)
    if not rates:
        raise ValueError("a FROC needs at least one FP-per-scan rate")
    ref_best, fp_scores, all_scores = [], [], []
    for dets, refs in cases:
        dets = [as_detection(d) for d in dets]
        refs = [as_reference(r) for r in refs]
        scores = np.array([d.score for d in dets], dtype=float)
        _, inside = _geometry(dets, refs)
        for j in range(len(refs)):
            ref_best.append(float(scores[inside[:, j]].max()) if inside[:, j].any() else -math.inf)
        fp_scores.extend(scores[~inside.any(axis=1)] if len(dets) else [])
        all_scores.extend(scores)
    ref_best, fp_scores = np.array(ref_best, dtype=float), np.array(fp_scores, dtype=float)
    n_refs, n_scans = len(ref_best), len(cases)
    thresholds = np.unique(np.array(all_scores, dtype=float))[::-1]
    sens = np.array([np.count_nonzero(ref_best >= t) / n_refs if n_refs else 1.0 for t in thresholds])
    fps = np.array([np.count_nonzero(fp_scores >= t) / n_scans for t in thresholds])
    at = []
    for rate in rates:
        ok = fps <= rate
        at.append(1.0 if not n_refs else float(sens[ok].max()) if ok.any() else 0.0)
    return FrocResult(tuple(float(t) for t in thresholds), tuple(float(s) for s in sens),
                      tuple(float(f) for f in fps), rates, tuple(at), float(np.mean(at)),
                      n_scans, n_refs, len(all_scores))
