"""The plots of ``radview-cli batch eval``, as PNG: Dice per case (a box and the cases as points, per label) and
the FROC curve. Drawn with matplotlib's Agg back end (no display, no Qt; matplotlib comes with VTK), written
atomically. Qt-free and torch-free.
"""
from __future__ import annotations

import numpy as np

from radview_base.atomic_file import atomic_path


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # a Figure without pyplot: no GUI back end is ever chosen

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: str) -> str:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def dice_plot(path: str, results: list[dict]) -> str:
    """Dice per case: one column per label name, a box plot with each case as a jittered point."""
    per_label: dict[str, list[float]] = {}
    for r in results:
        for m in r.get("labels") or []:
            if m.get("dice") is not None:
                per_label.setdefault(m["name"], []).append(float(m["dice"]))
    names = sorted(per_label)
    fig = _figure(max(4.0, 1.2 * len(names) + 2), 4.0)
    ax = fig.add_subplot()
    if names:
        data = [per_label[n] for n in names]
        ax.boxplot(data, showfliers=False, widths=0.5)
        rng = np.random.default_rng(0)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, alpha=0.7, zorder=3)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("Dice")
    ax.set_title(f"Dice per case ({len(results)} cases)")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def froc_plot(path: str, froc: dict) -> str:
    """Sensitivity against false positives per scan (log scale), with the requested rates marked."""
    fig = _figure(5.0, 4.0)
    ax = fig.add_subplot()
    fps = np.asarray(froc["fps_per_scan"], float)
    sens = np.asarray(froc["sensitivities"], float)
    if fps.size:
        order = np.argsort(fps, kind="stable")
        low = min(froc["fp_rates"]) / 2  # no false positive at all: drawn at the left edge of the log axis
        x = np.append(np.maximum(fps[order], low), max(max(froc["fp_rates"]), fps.max()))
        ax.step(x, np.append(sens[order], sens[order][-1]), where="post", label="operating points")
    ax.plot(froc["fp_rates"], froc["sensitivity_at"], "o", label=f"at the rates (CPM {froc['cpm']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("false positives per scan")
    ax.set_ylabel("sensitivity")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"FROC ({froc['n_scans']} scans, {froc['n_references']} references)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)
