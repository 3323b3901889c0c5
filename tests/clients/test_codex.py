"""The real Codex CLI (npm `@openai/codex`, pinned) through Triage's `/v1/responses` in front of
the fake upstream: one `codex exec` task in which the model calls one of Codex's tools, gets its
output back as a `function_call_output`, and answers; Codex must exit 0 with that answer and the
ledger must hold both turns.

Run by `make test-clients`, which installs the pinned Codex with npm into a cache outside the
clone and sets TRIAGE_CODEX; skipped, with the reason, when that was not done (no npm).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import config_from, deployment, serve
from triage.api import create_app
from triage.fakeupstream import FakeUpstreamThread
from triage.ledger import Ledger

CODEX = os.environ.get("TRIAGE_CODEX", "")

pytestmark = pytest.mark.skipif(
    not CODEX or not Path(CODEX).is_file(),
    reason="the Codex CLI is not installed: run `make test-clients` (needs npm)",
)


def _codex_home(home: Path, url: str) -> dict[str, str]:
    home.mkdir()
    # A custom provider speaking the Responses API; web search is a built-in tool no chat
    # backend runs, so Triage would refuse it (a 400 naming it): Codex is told not to send it.
    (home / "config.toml").write_text(
        f"""
model = "local"
model_provider = "triage"
approval_policy = "never"
sandbox_mode = "read-only"
web_search = "disabled"

[model_providers.triage]
name = "Triage"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "TRIAGE_API_KEY"
"""
    )
    return {**os.environ, "CODEX_HOME": str(home), "TRIAGE_API_KEY": "unused"}


def test_codex_exec_runs_a_tool_call_through_triage(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    config = config_from(
        {
            "model_list": [deployment("local", "hosted_vllm/tiny", fake.url + "/v1")],
            "router_settings": {"num_retries": 0},
            "triage": {"ledger": {"path": str(tmp_path / "ledger.db")}},
            "responses": {"path": str(tmp_path / "responses.db")},
        }
    )
    work = tmp_path / "work"
    work.mkdir()
    with serve(create_app(config)) as url:
        done = subprocess.run(
            [CODEX, "exec", "--skip-git-repo-check", "what is the weather in Paris?"],
            cwd=work,
            env=_codex_home(tmp_path / "codex", url),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    # The fake answers a user asking about the weather with a call of the first tool, and the
    # tool's result with text: both turns went through.
    assert "fake reply from tiny" in done.stdout
    chats = [r.json for r in fake.requests() if r.path.endswith("/chat/completions")]
    assert len(chats) == 2
    call = chats[1]["messages"][-2]["tool_calls"][0]
    assert chats[1]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": chats[1]["messages"][-1]["content"],
    }
    with Ledger(tmp_path / "ledger.db") as ledger:
        rows = ledger.rows()
    assert [(r.route, r.status) for r in rows] == [("local", 200), ("local", 200)]
