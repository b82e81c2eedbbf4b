"""Small helpers the benchmark scripts share: a WxH argument and the target verdict."""
from __future__ import annotations

import argparse


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, got {text!r}") from None
    return w, h


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"
