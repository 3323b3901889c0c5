"""Keys that were already matched are remembered (access/guard.py) without weakening the check:
near misses of a remembered key, and floods of wrong keys, stay 401, and a key that a reload
removes is refused at once even though it was just used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import deployment, serve
from triage.api import create_app
from triage.config import load_config
from triage.fakeupstream import FakeUpstreamThread

TEAM_KEY = "tk-team-0123456789"
OTHER_KEY = "tk-other-0123456789"
ADMIN_KEY = "ak-admin-0123456789"
ENV = {"TEAM_KEY": TEAM_KEY, "OTHER_KEY": OTHER_KEY, "ADMIN_KEY": ADMIN_KEY}
MSG = [{"role": "user", "content": "hello"}]


def _data(fake: FakeUpstreamThread, *key_ids: str) -> dict[str, Any]:
    keys = {"team": "os.environ/TEAM_KEY", "other": "os.environ/OTHER_KEY"}
    return {
        "model_list": [deployment("local", "hosted_vllm/small", fake.url + "/v1", local=True)],
        "auth": {
            "admin_key": "os.environ/ADMIN_KEY",
            "keys": [{"id": name, "key": keys[name]} for name in key_ids],
        },
        "triage": {"ledger": {"enabled": False}},
    }


def _status(client: httpx.Client, key: str) -> int:
    response = client.post(
        "/v1/chat/completions",
        json={"model": "local", "messages": MSG},
        headers={"authorization": f"Bearer {key}"},
    )
    return response.status_code


def test_near_misses_and_floods_of_wrong_keys_stay_refused_after_a_key_was_used(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_data(fake, "team", "other")))
    with serve(create_app(load_config(path, ENV))) as url, httpx.Client(base_url=url) as client:
        assert _status(client, TEAM_KEY) == 200
        assert _status(client, TEAM_KEY) == 200  # the remembered key
        near = [TEAM_KEY[:-1], TEAM_KEY + "0", TEAM_KEY.upper(), "x" + TEAM_KEY, TEAM_KEY[1:]]
        flood = [f"tk-wrong-{n:04d}" for n in range(300)]
        assert {_status(client, key) for key in near + flood} == {401}
        assert _status(client, OTHER_KEY) == 200  # the flood crowded no valid key out
        assert _status(client, TEAM_KEY) == 200


def test_a_key_removed_by_a_reload_is_refused_although_it_was_just_used(
    fake: FakeUpstreamThread, tmp_path: Path
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_data(fake, "team", "other")))
    app = create_app(load_config(path, ENV), config_source=lambda: load_config(path, ENV))
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    with serve(app) as url, httpx.Client(base_url=url) as client:
        assert _status(client, TEAM_KEY) == 200
        assert _status(client, OTHER_KEY) == 200
        path.write_text(yaml.safe_dump(_data(fake, "other")))
        assert client.post("/admin/reload", headers=admin).status_code == 200
        assert _status(client, TEAM_KEY) == 401
        assert _status(client, OTHER_KEY) == 200
