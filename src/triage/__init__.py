"""Triage: an OpenAI-compatible gateway that routes each request by task type."""

__version__ = "0.1.0"
