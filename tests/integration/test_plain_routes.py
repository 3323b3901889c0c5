"""The small JSON routes (models, health, admin, insight) are declared without FastAPI response
models or parameter fields, to keep pydantic.v1 and per-route schemas out of start-up. They must
still answer, validate and document exactly as FastAPI did for their annotated handlers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter

from tests.helpers import config_from, deployment
from triage.api import create_app

ADMIN = "ak-admin-0123456789"
HEADERS = {"authorization": f"Bearer {ADMIN}"}
BY_ERROR = {
    "error": {
        "message": "query.by: Input should be 'task', 'route', 'deployment', 'day' or 'tier'",
        "type": "invalid_request_error",
        "param": "query.by",
        "code": "invalid_request",
    }
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    data = {
        "model_list": [deployment("local", "hosted_vllm/small", "http://127.0.0.1:9/v1")],
        "triage": {"ledger": {"path": str(tmp_path / "usage.db")}},
        "auth": {"admin_key": "os.environ/ADMIN", "keys": []},
    }
    config = config_from(data, {"ADMIN": ADMIN})
    app = create_app(config, config_source=lambda: config)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http,
    ):
        yield http


def as_fastapi_renders(response: httpx.Response) -> bytes:
    """What FastAPI's response-model fast path writes for a `-> dict[str, Any]` handler."""
    return TypeAdapter(dict[str, Any]).dump_json(response.json())


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/health"),
        ("GET", "/v1/models"),
        ("GET", "/v1/models/local"),
        ("GET", "/admin/keys"),
        ("GET", "/v1/triage/usage?by=day"),
        ("POST", "/admin/reload"),
    ],
)
async def test_answers_are_the_bytes_fastapi_wrote(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=HEADERS)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == as_fastapi_renders(response)


async def test_explain_answer_keeps_pydantics_json(client: httpx.AsyncClient) -> None:
    body = {"model": "local", "messages": [{"role": "user", "content": "Sort a list in Python"}]}
    response = await client.post("/v1/triage/explain", json=body, headers=HEADERS)
    assert response.status_code == 200 and response.content == as_fastapi_renders(response)


@pytest.mark.parametrize(
    "query", ["by=bad", "by=", "by=TASK", "by=tier&by=bad", "since=1h&by=task%00", "by=task "]
)
async def test_a_bad_by_is_the_400_fastapis_validation_gave(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"/v1/triage/usage?{query}", headers=HEADERS)
    assert response.status_code == 400 and response.json() == BY_ERROR


@pytest.mark.parametrize(
    ("query", "by"), [("", "task"), ("by=bad&by=route", "route"), ("By=x&since=", "task")]
)
async def test_by_is_its_last_value_or_task(client: httpx.AsyncClient, query: str, by: str) -> None:
    response = await client.get(f"/v1/triage/usage?{query}", headers=HEADERS)
    assert response.status_code == 200 and response.json()["by"] == by


async def test_model_ids_with_slashes_and_unknown_ids(client: httpx.AsyncClient) -> None:
    found = await client.get("/v1/models/local", headers=HEADERS)
    assert found.json()["id"] == "local"
    missing = await client.get("/v1/models/org/local", headers=HEADERS)
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"
    assert "`org/local`" in missing.json()["error"]["message"]


async def test_openapi_documents_them_as_before(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    ok = paths["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {
        "additionalProperties": {"type": "string"},
        "title": "Response Health Health Get",
        "type": "object",
    }
    get_model = paths["/v1/models/{model_id}"]["get"]
    assert get_model["parameters"] == [
        {
            "in": "path",
            "name": "model_id",
            "required": True,
            "schema": {"title": "Model Id", "type": "string"},
        }
    ]
    usage = paths["/v1/triage/usage"]["get"]
    assert [p["name"] for p in usage["parameters"]] == ["since", "by"]
    assert usage["parameters"][1]["schema"]["enum"] == [
        "task",
        "route",
        "deployment",
        "day",
        "tier",
    ]
    for operation in (get_model, usage):  # parameter errors: Triage's 400, never FastAPI's 422
        assert "400" in operation["responses"] and "422" not in operation["responses"]
    keys = paths["/admin/keys"]["get"]["responses"]["200"]["content"]["application/json"]
    assert keys["schema"]["title"] == "Response Keys Admin Keys Get"


def test_building_the_app_imports_neither_pydantic_v1_nor_the_report_code() -> None:
    script = (
        "import sys\n"
        "from tests.helpers import config_from, deployment\n"
        "from triage.api import create_app\n"
        "d = deployment('local', 'hosted_vllm/small', 'http://127.0.0.1:9/v1')\n"
        "create_app(config_from({'model_list': [d]}))\n"
        "late = ('pydantic.v1', 'triage.report', 'triage.explain')\n"
        "print([m for m in late if m in sys.modules])\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
