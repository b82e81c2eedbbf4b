"""The built-in CT models: classical image analysis written with torch tensor operations, not learned networks.

Each run works in a canonical orientation (z inferior→superior, y anterior→posterior,
x right→left), on a working grid reduced in-plane to about 1.8 mm for the topology
steps, and refines the edges of every mask back at full resolution.  Outputs are
returned on the request's own grid and orientation.
"""
from __future__ import annotations

import numpy as np
import torch

from ai.api import Detection, InferenceRequest
from ai.runners import ct_nodule_shape as shape
from ai.runners import ct_nodules as nod
from ai.runners import ct_ops as ops
from ai.runners.base import RunContext, RunOutput
from ai.runners.ct_body import body_mask
from ai.runners.ct_bone import bone_mask
from ai.runners.ct_lungs import AIR_HU, lungs

BODY, LUNG_LEFT, LUNG_RIGHT, AIRWAY, BONE, NODULE = 1, 2, 3, 4, 7, 8


class _Analysis:
    """One request's shared steps (body, lungs), computed once and reused by the model that needs them."""

    def __init__(self, request: InferenceRequest, ctx: RunContext):
        self.request, self.ctx = request, ctx
        self.can = ops.Canonical.from_grid(request.grid)
        a = self.can.to_canonical(request.array)
        self.hu = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32).to(ctx.device)
        self.hu.clamp_(-1024.0, 3071.0)
        self.shape = tuple(self.hu.shape)
        self.f = ops.in_plane_factor(self.can.spacing_zyx[1:])
        s = self.can.spacing_zyx
        self.spacing_low = (s[0], s[1] * self.f, s[2] * self.f)
        self.low = ops.reduce_in_plane(self.hu, self.f)
        self._hs = self._body = self._lungs = self._noise = None

    @property
    def noise_hu(self) -> float:
        if self._noise is None:
            self._noise = ops.noise_sd(self.hu, min(self.can.spacing_zyx[1:]))
        return self._noise

    @property
    def hs(self) -> torch.Tensor:
        """Full-resolution HU, denoised in-plane as much as its noise needs (a Gaussian of at most 1.2 mm:
        none on a quiet or coarse series, so that thin bone keeps its density whatever the pixel size)."""
        if self._hs is None:
            sigma = ops.denoise_sigma_px(self.noise_hu, min(self.can.spacing_zyx[1:]))
            self._hs = ops.gaussian_in_plane(self.hu, sigma)
        return self._hs

    def body(self, ctx: RunContext):
        if self._body is None:
            self._body = body_mask(self.low, self.spacing_low, ctx.step)
        return self._body

    def lungs(self, ctx: RunContext):
        if self._lungs is None:
            self._lungs = lungs(self.low, self.body(ctx.sub(0.0, 0.4)).body, self.spacing_low, ctx.sub(0.4, 1.0).step)
        return self._lungs

    def full(self, mask_low: torch.Tensor, inside_full: torch.Tensor) -> torch.Tensor:
        return ops.refine_to_full(mask_low, self.f, self.shape[1:], inside_full)

    def lung_labels_full(self, ctx: RunContext) -> torch.Tensor:
        """uint8 canonical full-resolution map: 2 left lung, 3 right lung, 4 airway."""
        lr = self.lungs(ctx)
        airish = self.hs < AIR_HU
        out = torch.zeros(self.shape, dtype=torch.uint8, device=self.hu.device)
        aw = self.full(lr.airway, airish)
        left = self.full(lr.left, airish) & ~aw
        right = self.full(lr.right, airish) & ~aw & ~left
        out[right] = LUNG_RIGHT
        out[left] = LUNG_LEFT
        out[aw] = AIRWAY
        return out

    def to_request_grid(self, canonical: torch.Tensor) -> np.ndarray:
        return self.can.from_canonical(ops.to_numpy(canonical))


class _Model:
    """Base of the built-ins: nothing to load (no weights); the manifest gives names and defaults."""

    labels: dict[int, str] = {}

    def __init__(self, manifest, device):
        self.manifest, self.device = manifest, device

    def run(self, request: InferenceRequest, ctx: RunContext) -> RunOutput:
        ctx.step(0.0, "preparing")
        an = _Analysis(request, ctx)
        out = self._run(an, ctx)
        out.parameters.setdefault("working_grid_mm", [round(v, 3) for v in an.spacing_low])
        out.parameters.setdefault("method", "classical image analysis, not a learned network")
        ctx.step(1.0, "done")
        return out

    def _run(self, an: _Analysis, ctx: RunContext) -> RunOutput:
        raise NotImplementedError


class BodyModel(_Model):
    def _run(self, an, ctx):
        body = an.body(ctx.sub(0.05, 0.8))
        ctx.step(0.85, "body: full resolution")
        full = an.full(body.body, an.hs > -500.0) | ops.expand_in_plane(ops.erode(body.body, 0, 1, 1), an.f,
                                                                         an.shape[1:])
        table = body.table_at(an.hs, an.f)
        if table is not None:
            full &= ~table
        return RunOutput(an.to_request_grid(full.to(torch.uint8) * BODY), {BODY: "body"})


class LungsModel(_Model):
    def _run(self, an, ctx):
        an.lungs(ctx.sub(0.05, 0.8))
        ctx.step(0.85, "lungs: full resolution")
        labels = an.lung_labels_full(ctx)
        msgs = [f"not lung: {ml:.0f} mL air region ({why})" for ml, why in an.lungs(ctx).rejected[:5] if ml >= 5.0]
        return RunOutput(an.to_request_grid(labels), {LUNG_LEFT: "lung_left", LUNG_RIGHT: "lung_right",
                                                       AIRWAY: "airway"}, messages=msgs)


class BoneModel(_Model):
    def _run(self, an, ctx):
        body = an.body(ctx.sub(0.05, 0.5)).body
        ctx.step(0.55, "bone: thresholds")
        body_full = ops.expand_in_plane(ops.dilate(body, 0, 1, 1), an.f, an.shape[1:])
        bone = bone_mask(an.hs, body_full, an.can.spacing_zyx, an.noise_hu, an.f, ctx.sub(0.55, 1.0).step)
        return RunOutput(an.to_request_grid(bone.to(torch.uint8) * BONE), {BONE: "bone"})


class NoduleModel(_Model):
    def _run(self, an, ctx):
        from ai.runners.sliding_window import sliding_window

        lr = an.lungs(ctx.sub(0.02, 0.35))
        region = lr.left | lr.right
        # a nodule that vessels tie to the mediastinum is no hole of the lung mask: close it (6 mm in-plane)
        ry, rx = (max(1, ops.radius_vox(6.0, v)) for v in an.spacing_low[1:])
        region = ops.erode(ops.dilate(region, 0, ry, rx), 0, ry, rx) & an.body(ctx).body
        empty = RunOutput(an.to_request_grid(torch.zeros(an.shape, dtype=torch.uint8)), {NODULE: "nodule"})
        if not bool(region.any()):
            empty.messages.append("no lungs found in this series: nothing to search")
            return empty
        zz, yy, xx = torch.nonzero(region, as_tuple=True)
        m = 6
        bb = [slice(max(0, int(v.min()) - m), int(v.max()) + m + 1) for v in (zz, yy, xx)]
        crop = nod.dense_map(an.low[bb[0], bb[1], bb[2]])
        patch = tuple(int(v) for v in (getattr(self.manifest, "patch_size", None) or (96, 160, 160)))
        overlap = float(getattr(self.manifest, "overlap", None) or 0.25)
        resp = sliding_window(lambda b: nod.hessian_blobness(b, an.spacing_low), crop, patch, ctx.sub(0.35, 0.6),
                              overlap=overlap, out_channels=len(nod.SCALES_MM))
        resp = resp.to(crop.device)
        peaks = nod.find_peaks(resp, region[bb[0], bb[1], bb[2]], an.low[bb[0], bb[1], bb[2]])
        f = an.f
        peaks_full = [(k + bb[0].start, (j + bb[1].start) * f + (f - 1) // 2,
                       (i + bb[2].start) * f + (f - 1) // 2, r, s)
                      for k, j, i, r, s in peaks]
        hu_np = ops.to_numpy(an.hu)
        opts = self.manifest.resolve_parameters(an.request.options)
        lung_full = ops.to_numpy(ops.expand_in_plane(region, f, an.shape[1:]))
        found = nod.detect(hu_np, an.can.spacing_zyx, peaks_full, lung_full, ctx.sub(0.6, 0.97).step, (1, f, f))
        found = [m_ for m_ in found if m_["score"] >= float(opts.get("min_score", nod.DEFAULT_MIN_SCORE))
                 and float(opts.get("min_diameter_mm", 5.5)) <= m_["diameter"]
                 <= float(opts.get("max_diameter_mm", 35))]
        labels = np.zeros(an.shape, np.uint8)
        lung_low = ops.to_numpy(lr.left.to(torch.uint8) * LUNG_LEFT + lr.right.to(torch.uint8) * LUNG_RIGHT)
        detections, reasons = [], []
        for m_ in found:
            labels[m_["box"]][m_["mask"]] = NODULE
            c_full = m_["center"]
            c_orig = an.can.index_to_original(c_full, an.shape)
            lps = an.request.grid.index_to_world(c_orig)
            k, j, i = np.clip(np.round([c_full[0], c_full[1] / f, c_full[2] / f]).astype(int), 0,
                              np.array(lung_low.shape) - 1)
            side = {LUNG_LEFT: "lung_left", LUNG_RIGHT: "lung_right"}.get(int(lung_low[k, j, i]), "lung")
            detections.append(Detection(
                center_lps=tuple(float(v) for v in lps), diameter_mm=round(float(m_["diameter"]), 1),
                volume_ml=round(float(m_["volume"]), 3), mean_hu=round(float(m_["mean_hu"]), 1),
                kind=m_["kind"], score=round(float(m_["score"]), 3), label="nodule candidate", location=side,
                features={"plateau_mm": round(float(m_["plateau"]), 2),
                          "shell_density": round(float(m_["shell"]), 3),
                          "elongation": round(float(m_["elongation"]), 2),
                          "contrast_hu": round(float(m_["contrast"]), 1),
                          "vessels_leaving": len(m_["vessels"]),
                          "widest_vessel_mm": round(float(max(m_["vessels"], default=0.0)), 1)}))
            reasons.append(f"candidate {len(detections)} (score {m_['score']:.2f}, "
                           f"{m_['diameter']:.1f} mm): {m_['reason']}")
        params = {**opts, "scales_mm": list(nod.SCALES_MM), "min_report_mm": nod.MIN_REPORT_MM,
                  "vessel_ratio": shape.VESSEL_RATIO, "min_plateau": shape.MIN_PLATEAU,
                  "max_elongation": shape.MAX_ELONGATION, "patch_size": list(patch), "overlap": overlap,
                  "peaks_examined": len(peaks), "reasons": reasons}
        return RunOutput(an.can.from_canonical(labels), {NODULE: "nodule"}, detections, params)
