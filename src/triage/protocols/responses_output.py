"""Chat answers as Responses API objects: the Response, its output items and usage, and the
input items as the API lists them back (`GET /v1/responses/{id}/input_items`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from triage.errors import TriageError, http_status
from triage.protocols.responses import Item, ResponsesRequest, input_items, split_name


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


@dataclass
class Draft:
    """What a Response object says besides its output: fixed when the request arrives."""

    request: ResponsesRequest
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = 0
    stored: bool = True


def response_object(
    draft: Draft,
    *,
    status: str,
    output: list[Item],
    usage: Item | None = None,
    error: TriageError | None = None,
    incomplete: str | None = None,
) -> Item:
    """A Response (the spec's required fields all present) in the given state."""
    request = draft.request
    body: Item = {
        "id": draft.id,
        "object": "response",
        "created_at": draft.created_at,
        "status": status,
        "completed_at": draft.created_at if status == "completed" else None,
        "error": failure(error) if error is not None else None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": output,
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": (request.reasoning or {}).get("effort"), "summary": None},
        "store": draft.stored,
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": {"format": (request.text or {}).get("format") or {"type": "text"}},
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": [_tool_echo(t) for t in request.tools or []],
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": request.truncation or "disabled",
        "metadata": request.metadata or {},
    }
    if usage is not None:
        body["usage"] = usage
    for name in ("user", "prompt_cache_key"):  # strings when present: never null
        if getattr(request, name) is not None:
            body[name] = getattr(request, name)
    return body


def _tool_echo(tool: Item) -> Item:
    return {
        "type": "function",
        "name": tool.get("name"),
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict"),
    }


def failure(err: TriageError) -> Item:
    """The Response's `error`: the spec allows only a few codes, so the status picks one."""
    status = http_status(err)
    code = "rate_limit_exceeded" if status == 429 else "server_error"
    if status == 400:
        code = "invalid_prompt"
    return {"code": code, "message": err.message}


def usage_of(chat_usage: Any) -> Item:
    usage = chat_usage if isinstance(chat_usage, dict) else {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": int(cached)},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(reasoning)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def message_item(item_id: str, text: str, status: str = "completed") -> Item:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": [text_part(text)] if status != "in_progress" else [],
    }


def text_part(text: str) -> Item:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str, tools: list[Item] | None
) -> Item:
    """A function_call item; a namespaced tool's call names its namespace apart."""
    namespace, short = split_name(name, tools)
    item = {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": short,
        "arguments": arguments,
        "status": status,
    }
    if namespace is not None:
        item["namespace"] = namespace
    return item


def reasoning_item(item_id: str, text: str) -> Item:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": item_id, "type": "reasoning", "summary": summary}


def from_chat(draft: Draft, body: Item) -> Item:
    """The Response for a whole chat completion."""
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[Item] = []
    thought = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(thought, str) and thought:
        output.append(reasoning_item(new_id("rs"), thought))
    if message.get("content"):
        output.append(message_item(new_id("msg"), str(message["content"])))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name", "")),
                str(function.get("arguments") or ""),
                "completed",
                draft.request.tools,
            )
        )
    truncated = choice.get("finish_reason") == "length"
    return response_object(
        draft,
        status="incomplete" if truncated else "completed",
        output=output,
        usage=usage_of(body.get("usage")),
        incomplete="max_output_tokens" if truncated else None,
    )


def stored_input_items(request: ResponsesRequest) -> list[Item]:
    """The request's input items as the API lists them back: each with an id and a status."""
    return [_resource(item) for item in input_items(request)]


def _resource(item: Item) -> Item:
    kind = item.get("type", "message")
    if kind == "message":
        content = item.get("content")
        if item.get("role") == "assistant":
            text = content if isinstance(content, str) else _joined(content)
            return {**message_item(_id_of(item, "msg"), text), "role": "assistant"}
        parts = [{"type": "input_text", "text": content}] if isinstance(content, str) else content
        role = item.get("role")
        return {"id": _id_of(item, "msg"), "type": "message", "role": role, "content": parts}
    prefix = {"function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}
    out = {**item, "id": _id_of(item, prefix.get(str(kind), "item"))}
    if kind in ("function_call", "function_call_output"):
        out["status"] = "completed"
    return out


def _id_of(item: Item, prefix: str) -> str:
    value = item.get("id")
    return value if isinstance(value, str) and value else new_id(prefix)


def _joined(content: Any) -> str:
    if not isinstance(content, list):
        return ""
    return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
