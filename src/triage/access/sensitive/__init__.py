"""Sensitive-data detection on what leaves for an upstream (see ``scan.py``)."""

from triage.access.sensitive.scan import DETECTORS, Detector, Finding

__all__ = ["DETECTORS", "Detector", "Finding"]
