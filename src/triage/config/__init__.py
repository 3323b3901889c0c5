"""Configuration: schema, loading and validation."""

from triage.config.loader import ConfigError, load_config, parse_config, summary
from triage.config.routes import Route, TriageSettings
from triage.config.schema import Config, Deployment

__all__ = [
    "Config",
    "ConfigError",
    "Deployment",
    "Route",
    "TriageSettings",
    "load_config",
    "parse_config",
    "summary",
]
