"""GET /v1/models and /v1/models/{id}: the model groups and aliases the caller may use (every
one for the admin key or on a keyless server; a client key's `models` allow-list otherwise)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from triage.api.callers import caller, visible_models
from triage.api.deps import state
from triage.api.plain import PARAMETER_ERRORS, json_object, ok_object, path_parameter
from triage.errors import NotFound

router = APIRouter()


def _entries(request: Request) -> dict[str, dict[str, Any]]:
    key = caller(request).key
    app_state = state(request)
    created = int(app_state.extras["started_at"])
    config = app_state.config
    names = visible_models([*config.triage.aliases, *config.groups], key)
    return {
        name: {"id": name, "object": "model", "created": created, "owned_by": "triage"}
        for name in names
    }


@router.get(
    "/v1/models", response_model=None, responses=ok_object("Response List Models V1 Models Get")
)
async def list_models(request: Request) -> Response:
    return json_object({"object": "list", "data": list(_entries(request).values())})


@router.get(
    "/v1/models/{model_id:path}",
    response_model=None,
    responses={**ok_object("Response Get Model V1 Models  Model Id  Get"), **PARAMETER_ERRORS},
    openapi_extra={"parameters": [path_parameter("model_id", "Model Id")]},
)
async def get_model(request: Request) -> Response:
    model_id: str = request.path_params["model_id"]
    entry = _entries(request).get(model_id)
    if entry is None:
        raise NotFound(f"The model `{model_id}` does not exist", param="model")
    return json_object(entry)
