"""Schemathesis over Triage's own OpenAPI schema: examples, coverage (boundary and invalid values
for every keyword) and fuzzing, positive and negative, sent over HTTP to the real app.

The schema is built at import from an app whose deployments go nowhere (the document depends on
the routes only) because schemathesis' lazy `from_fixture` loader does not run under pytest 9;
the requests go to the session's served app, whose deployments are on the fake upstream.
"""

from __future__ import annotations

import zlib
from typing import Any

import httpx
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.fuzz.sanity import Tally, check_answer, known_bug
from tests.helpers import config_from, deployment
from triage.api import create_app

MAX_EXAMPLES = 50

# Checks that would flag behaviour Triage has on purpose:
# - positive_data_acceptance: the schema is the OpenAI wire shape; whether a well-shaped request
#   is served also depends on the config (an unknown `model` is a 404, `max_tokens` over
#   `server.max_tokens` or more than `server.max_messages` messages a 400).
EXCLUDED = [positive_data_acceptance]


def _serve_model(case: schemathesis.Case) -> None:
    """Point three in four positive bodies at a model group that exists, so that schema-valid
    requests travel the whole way (classifier, engine, fake upstream) instead of all being 404s."""
    body = case.body
    if case.meta is None or case.meta.generation.mode.is_negative or not isinstance(body, dict):
        return
    model = body.get("model")
    if not isinstance(model, str) or zlib.crc32(model.encode()) % 4 == 0:
        return
    served = ("emb",) if case.path == "/v1/embeddings" else ("auto", "local")
    body["model"] = served[len(model) % len(served)]


def _document() -> dict[str, Any]:
    nowhere = deployment("local", "hosted_vllm/fake-model", "http://127.0.0.1:9/v1")
    document: dict[str, Any] = create_app(config_from({"model_list": [nowhere]})).openapi()
    return document


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.update(request_timeout=30)
# Read whole streams (schemathesis stops after 20 events), so each must end with `[DONE]`.
schema.config.max_stream_events = 100_000
schema.config.generation.update(max_examples=MAX_EXAMPLES, allow_x00=True, database="none")


def test_the_served_schema_is_the_one_fuzzed(fuzz_gateway: str) -> None:
    assert httpx.get(fuzz_gateway + "/openapi.json").json() == DOCUMENT


@schema.parametrize()
def test_no_generated_request_gets_a_server_error_or_a_traceback(
    case: schemathesis.Case, fuzz_gateway: str, tally: Tally
) -> None:
    bug = known_bug(case.path, case.body)
    if bug is not None:
        tally.withhold(bug)
        return
    _serve_model(case)
    response = case.call(base_url=fuzz_gateway)
    content_type = response.headers.get("content-type", [""])[0]
    check_answer(tally, response.status_code, response.content, content_type)
    case.validate_response(response, excluded_checks=EXCLUDED)
