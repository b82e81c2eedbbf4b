"""Agreement of AI results with a reference: segmentation overlap and surface distances, detection P/R/F1 and FROC.

numpy, scipy and SimpleITK only (no torch, no viewer). Arrays are ``(z, y, x)`` with ``spacing_zyx`` in mm;
positions are DICOM LPS mm. These are agreement figures against the reference given, not a clinical
validation.
"""
from ai.metrics.detection import (
                        DetectionMetrics,
                        FrocResult,
                        Match,
                        ReferenceNodule,
                        ScoredDetection,
                        detection_metrics,
                        froc,
)
from ai.metrics.segmentation import LabelMetrics, segmentation_metrics, surface, surface_distances

__all__ = ["LabelMetrics", "segmentation_metrics", "surface", "surface_distances", "DetectionMetrics", "FrocResult",
           "Match", "ReferenceNodule", "ScoredDetection", "detection_metrics", "froc"]
