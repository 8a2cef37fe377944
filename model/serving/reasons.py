"""The face detector's quarantine reasons: stable strings written into `photo_quarantine`.

Kept apart from `model.serving.faces` (NumPy, Pillow, the detector) so the report job and the
analysts' queries can name them without importing any of that.
"""

NO_FACE = "no_face"
FACE_TOO_SMALL = "face_too_small"
DETECTION_FAILED = "detection_failed"
# A frame quarantined with one of these was a frame the detector looked at.
DETECTOR_REASONS = (NO_FACE, FACE_TOO_SMALL, DETECTION_FAILED)
