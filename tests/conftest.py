"""Shared fixtures: configs built in code, the app over real HTTP or ASGI, the fake upstream."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
