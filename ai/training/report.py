"""The training report folder: curves (PNG), per-case validation metrics (CSV, JSON) and the run's record.

``report/curves.png``: the training loss per step (and its running mean) and the validation Dice per label
after each epoch; ``report/validation.csv`` / ``validation.json``: the final model on every validation case;
``report/training.json``: data hash, parameters, run id, device, steps, time and why the run stopped.
Every file is written atomically. The PNG needs matplotlib (``pip install 'radview[ai]'``); without it the
report says so and the rest is written.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Sequence

from radview_base.atomic_file import atomic_write_bytes

FOLDER = "report"


def _running_mean(values: Sequence[float], n: int = 20) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= n:
            acc -= values[i - n]
        out.append(acc / min(i + 1, n))
    return out


def curves_png(history: dict) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    steps = [s for s, _ in history.get("loss", [])]
    losses = [v for _, v in history.get("loss", [])]
    ax1.plot(steps, losses, color="0.75", linewidth=0.6, label="loss")
    ax1.plot(steps, _running_mean(losses), color="C0", label="running mean (20 steps)")
    ax1.set_xlabel("step")
    ax1.set_ylabel("Dice + cross-entropy loss")
    ax1.set_title("training loss")
    ax1.legend(loc="upper right")
    records = history.get("validation", [])
    if records:
        names = [n for n in records[0]["dice"] if n != "mean"]
        x = [r["step"] for r in records]
        for i, n in enumerate(names):
            ax2.plot(x, [r["dice"][n] for r in records], marker="o", markersize=3, color=f"C{i % 10}", label=n)
        ax2.plot(x, [r["dice"]["mean"] for r in records], color="k", linestyle="--", label="mean")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("step")
    ax2.set_ylabel("Dice")
    ax2.set_title("validation Dice (model grid)")
    ax2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_report(out: str | os.PathLike, history: dict, metrics: Sequence, record: dict) -> list[str]:
    """Write the report into ``out/report``; return the files written (relative to ``out``)."""
    folder = Path(out) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        atomic_write_bytes(folder / "curves.png", curves_png(history))
        written.append(f"{FOLDER}/curves.png")
    except ImportError:
        record = {**record, "note": "no curves.png: matplotlib is not installed (pip install 'radview[ai]')"}
    rows = [m.as_dict() for m in metrics]
    atomic_write_bytes(folder / "validation.json", json.dumps(rows, indent=2) + "\n")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["case", "label", "dice", "reference_ml", "predicted_ml"])
    for m in rows:
        for name, value in m["dice"].items():
            writer.writerow([m["case"], name, f"{value:.4f}", f"{m['reference_ml'][name]:.2f}",
                             f"{m['predicted_ml'][name]:.2f}"])
    atomic_write_bytes(folder / "validation.csv", text.getvalue())
    full = {**record, "history": history}
    atomic_write_bytes(folder / "training.json", json.dumps(full, indent=2) + "\n")
    return written + [f"{FOLDER}/validation.json", f"{FOLDER}/validation.csv", f"{FOLDER}/training.json"]
