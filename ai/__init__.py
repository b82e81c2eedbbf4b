"""radview's AI engine. Never imports ``viewer``; only ``ai.runners`` may import torch."""
