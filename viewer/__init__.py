"""radview: a desktop radiology viewer with AI assist. Research software: not for clinical use."""

__version__ = "0.1.0"

ABOUT_TEXT = (
    f"radview {__version__}\n\n"
    "A desktop radiology viewer with AI assist.\n\n"
    "NOT FOR CLINICAL USE. radview is research and teaching software; it is not a medical device, "
    "and nothing it shows or exports is a diagnosis."
)
