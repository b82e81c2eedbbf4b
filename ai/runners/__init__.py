"""The only package that imports torch: built-in CT models, device handling, sliding window."""
