"""Evaluation: age metrics, evaluation of a version, calibration of its intervals."""
