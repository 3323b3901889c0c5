"""What `triage serve` loads at start-up: neither litellm nor httpx on the native lane.

Both cost start-up time and resident memory in every worker (issue 16: litellm seconds and
hundreds of MB; httpx and its TLS context about 90 ms and 6 MB), and neither is needed before a
request that uses them: litellm only for the litellm lane, httpx only for readiness probes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import serve
from triage.api import create_app
from triage.config.loader import parse_config

CONFIG = """
model_list:
  - model_name: local-small
    litellm_params: {model: hosted_vllm/fake-model, api_base: "http://127.0.0.1:9/v1"}
  - model_name: cloud-large
    litellm_params:
      model: openai/gpt-4o
      api_base: "http://127.0.0.1:9/v1"
      api_key: not-a-secret
router_settings:
  fallbacks: [{local-small: [cloud-large]}]
triage:
  aliases: [auto]
  default_route: [local-small, cloud-large]
  lane: native
  ledger: {enabled: true, path: LEDGER}
  savings: {reference_model: openai/gpt-4o}
"""

# Everything `cmd_serve` imports and builds before it hands the app to uvicorn.
SCRIPT = """
import sys
import uvicorn
from triage.api.server import server_options
from triage.api import create_app
from triage.cli import main
from triage.config.loader import parse_config
config = parse_config(sys.argv[1], {})
create_app(config)
server_options(config.server)
loaded = [m for m in ("litellm", "httpx", "httpcore") if m in sys.modules]
assert not loaded, f"imported at start-up: {loaded}"
"""


def _config(tmp_path: Path) -> str:
    return CONFIG.replace("LEDGER", str(tmp_path / "ledger.db"))


def test_serve_starts_without_litellm_or_httpx_on_the_native_lane(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, _config(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_readiness_probes_still_run_with_the_client_built_on_first_use(tmp_path: Path) -> None:
    """Port 9 refuses connections: the probes must have run (and failed) for the deployments to
    be reported unreachable, twice (the second round reuses the client built by the first).
    Without client keys every caller gets the detail."""
    app = create_app(parse_config(_config(tmp_path), {}))
    with serve(app) as url:
        first = httpx.get(url + "/health/ready", timeout=30)
        app.state.triage.extras["probes"].ttl = 0.0  # the next call probes again
        second = httpx.get(url + "/health/ready", timeout=30)
    for answer in (first, second):
        assert answer.status_code == 503
        states = {d["id"]: d["state"] for d in answer.json()["deployments"]}
        assert states == {"local-small-1": "unreachable", "cloud-large-1": "unreachable"}
    assert app.state.triage.extras["probes"].rounds == 2
