"""The real Claude Code (npm `@anthropic-ai/claude-code`, pinned) through Triage's `/v1/messages`
in front of the fake upstream: `claude -p` with a temporary home, `ANTHROPIC_BASE_URL` at Triage
and `ANTHROPIC_AUTH_TOKEN`; Claude model names are mapped by `router_settings.model_group_alias`.
Claude Code must exit 0 with the fake's answer, and the ledger must show its calls routed as
configured.

Run by `make test-clients`, which installs the pinned Claude Code with npm into a cache outside
the clone and sets TRIAGE_CLAUDE; skipped, with the reason, when that was not done (no npm).
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

CLAUDE = os.environ.get("TRIAGE_CLAUDE", "")

pytestmark = pytest.mark.skipif(
    not CLAUDE or not Path(CLAUDE).is_file(),
    reason="Claude Code is not installed: run `make test-clients` (needs npm)",
)


def test_claude_print_mode_answers_through_triage(fake: FakeUpstreamThread, tmp_path: Path) -> None:
    base = fake.url + "/v1"
    config = config_from(
        {
            "model_list": [
                # Not marked local: Claude Code's own system prompt must not look like personal
                # data to the sensitive scan (it once did: its noreply@ commit trailer), or
                # every turn would be refused for want of a local deployment.
                deployment("local", "hosted_vllm/tiny", base),
                deployment("small", "hosted_vllm/mini", base),
            ],
            "router_settings": {
                "num_retries": 0,
                "model_group_alias": {"claude-*haiku*": "small", "claude-*": "auto"},
            },
            "triage": {"ledger": {"path": str(tmp_path / "ledger.db")}, "default_route": ["local"]},
        }
    )
    home = tmp_path / "home"
    home.mkdir()
    with serve(create_app(config)) as url:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_AUTH_TOKEN": "unused",
            "ANTHROPIC_MODEL": "claude-sonnet-4-5",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        }
        done = subprocess.run(
            [CLAUDE, "-p", "say hello"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "fake reply from tiny" in done.stdout
    with Ledger(tmp_path / "ledger.db") as ledger:
        rows = ledger.rows()
    # The main turn went to `auto` (classified, default route `local`); any background call for
    # the small model to `small`; nothing else.
    assert ("local", 200) in [(r.route, r.status) for r in rows]
    assert {r.route for r in rows} <= {"local", "small"}
