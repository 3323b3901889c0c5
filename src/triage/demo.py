"""`make demo`: the hybrid pattern on one screen, with nothing to install and no API key.

Starts two fake upstreams on loopback (a stand-in local backend and a stand-in cloud API), starts
`triage serve` on a generated config, sends a mixed workload through `model="auto"` with the
official openai SDK (plain and streamed), prints where each task went and what it cost, then the
ledger report, and shuts everything down.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import yaml

SAMPLES: dict[str, list[str]] = {
    "classification": [
        "Label this support ticket as billing, shipping or technical: 'My parcel never arrived.'",
        "Is this review positive or negative? 'The battery died after two days.'",
    ],
    "extraction": [
        "From the note below, list every date and the person attached to it.\n\nMeeting moved to "
        "3 May with Dana; follow-up on 10 May with Omar.",
    ],
    "closed_qa": [
        "Using only the passage, when did the bridge open?\n\nThe harbour bridge took six years "
        "to build and opened to traffic in the spring of 1932 after a long strike.",
    ],
    "summarization": [
        "Summarize in two sentences:\n\nOur quarterly sales rose eight percent, driven mostly by "
        "the new subscription tier. Costs rose too, mainly from cloud hosting, and the team plans "
        "to move batch jobs to cheaper hardware next quarter.",
    ],
    "rewrite": ["Rewrite this more politely: 'Send me the report now, you are late again.'"],
    "open_qa": ["Why do onions make people cry when they are cut?"],
    "brainstorming": ["Give me ten name ideas for a bakery that only sells sourdough."],
    "chat": ["Hey! How is your day going so far?"],
    "creative_writing": ["Write a short poem about a lighthouse keeper who loves thunderstorms."],
    "code": [
        "Write a Python function that merges two sorted lists into one sorted list.",
        "Why does this SQL fail? SELECT name, COUNT(*) FROM users;",
    ],
    "reasoning": [
        "A train leaves at 9:40 and travels 210 km at 84 km/h. A second train leaves at 10:05 "
        "on the same track at 105 km/h. When and where does the second catch up? Show steps.",
    ],
}


LOCAL_MODELS = "llama-3.2-3b,qwen2.5-coder-7b"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(url: str, proc: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def _config(local: str, cloud: str, ledger: Path) -> dict[str, Any]:
    def dep(group: str, model: str, base: str, **info: Any) -> dict[str, Any]:
        params = {"model": model, "api_base": base + "/v1", "api_key": "demo-not-a-secret"}
        return {"model_name": group, "litellm_params": params, "model_info": info}

    return {
        "model_list": [
            dep("local-small", "hosted_vllm/llama-3.2-3b", local, local=True, gpu_hour_cost=0.6),
            dep(
                "local-coder", "hosted_vllm/qwen2.5-coder-7b", local, local=True, gpu_hour_cost=1.2
            ),
            dep("cloud-large", "openai/gpt-4o", cloud),
        ],
        "router_settings": {"num_retries": 1, "fallbacks": [{"local-small": ["cloud-large"]}]},
        "triage": {
            "default_route": ["local-small", "cloud-large"],
            "routes": {"code": ["local-coder", "cloud-large"], "reasoning": ["cloud-large"]},
            "escalate": {"difficulty_above": 0.9, "route": ["cloud-large"]},
            "savings": {"reference_model": "openai/gpt-4o"},
            "ledger": {"path": str(ledger)},
        },
        "server": {"log_level": "warning"},
    }


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr
    )


def _workload(base_url: str) -> dict[str, dict[str, Any]]:
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="unused")
    table: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"n": 0, "ms": 0.0, "cost": 0.0, "where": set()}
    )
    for i, (_task, prompts) in enumerate(sorted(SAMPLES.items())):
        for prompt in prompts:
            started = time.perf_counter()
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": prompt}], max_tokens=24
            )
            raw.parse()
            row = table[raw.headers.get("x-triage-task", "?")]
            row["n"] += 1
            row["ms"] += (time.perf_counter() - started) * 1000
            row["cost"] += float(raw.headers.get("x-triage-cost-usd", "0"))
            row["where"].add(raw.headers.get("x-triage-route", "?"))
            if i % 4 == 0:
                _stream_once(client, prompt)
    return table


def _stream_once(client: Any, prompt: str) -> None:
    stream = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": prompt}], stream=True, max_tokens=12
    )
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    print(f"  streamed: {text[:60]!r}…")


def _print(table: dict[str, dict[str, Any]]) -> None:
    print(f"\n{'task':18} {'n':>3} {'routed to':28} {'avg ms':>8} {'cost $':>12}")
    for task, row in sorted(table.items()):
        where = ",".join(sorted(row["where"]))
        print(
            f"{task:18} {row['n']:>3} {where:28} {row['ms'] / row['n']:>8.1f} {row['cost']:>12.8f}"
        )


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="triage-demo-"))
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    local_port, cloud_port, triage_port = _port(), _port(), _port()
    procs = [
        _start(["triage.fakeupstream", "--port", str(local_port), "--models", LOCAL_MODELS], env),
        _start(
            [
                "triage.fakeupstream",
                "--port",
                str(cloud_port),
                "--latency-ms",
                "120",
                "--models",
                "gpt-4o",
            ],
            env,
        ),
    ]
    local, cloud = f"http://127.0.0.1:{local_port}", f"http://127.0.0.1:{cloud_port}"
    config_path = work / "demo.yaml"
    config_path.write_text(yaml.safe_dump(_config(local, cloud, work / "usage.db")))
    try:
        for url, proc in zip((local, cloud), procs, strict=True):
            _wait(url + "/health", proc)
        print(f"fake local backend on {local}, fake cloud API on {cloud} (+120 ms)")
        procs.append(
            _start(
                ["triage.cli", "serve", "--config", str(config_path), "--port", str(triage_port)],
                env,
            )
        )
        base = f"http://127.0.0.1:{triage_port}"
        _wait(base + "/health", procs[-1])
        print(f"triage serving on {base}; sending the mixed workload with the openai SDK…")
        _print(_workload(base))
        print("\n$ triage report --by task")
        subprocess.run(
            [sys.executable, "-m", "triage.cli", "report", "--ledger", str(work / "usage.db")],
            check=True,
            env=env,
        )
        return 0
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
