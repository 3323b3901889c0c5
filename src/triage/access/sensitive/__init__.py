"""Sensitive-data detection on what leaves for an upstream (see ``scan.py``)."""

from triage.access.sensitive.scan import Detector, Finding
from triage.config.routes import DETECTORS

__all__ = ["DETECTORS", "Detector", "Finding"]
