"""The small base that both ``viewer`` and ``ai`` may import: one ``Geometry``, one ``Cancelled``, atomic files
and label tables. It imports nothing of radview's own and no GUI, VTK or torch."""
