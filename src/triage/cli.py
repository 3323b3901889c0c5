"""The `triage` command. The only place that reads argv and the process environment.

triage serve --config PATH [--host H] [--port P] [--workers N]
triage check-config PATH
triage classify "text"
triage eval --data FILE.jsonl [--data FILE2.jsonl ...] [--json]
triage train --data FILE.jsonl --out DIR [--base] [--eval FILE.jsonl]
triage report [--config PATH | --ledger PATH] [--since 24h] [--by task] [--json]
triage fake-upstream [--port P ...]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from triage.config import Config, ConfigError, load_config, summary

CONFIG_ENV = "TRIAGE_CONFIG"
BIND_HOST_ENV = "TRIAGE_BIND_HOST"  # what `serve` listens on, for its worker processes
SETTLE_AFTER_S = 1.0


def _load(path: str) -> Config:
    return load_config(path, os.environ)


def _settle(app: Any) -> None:
    """Parse the price map (else the first request's work), then move every object alive now
    (modules, config models, classifier rows, the map: ~100k that live as long as the process)
    out of the garbage collector's way with `gc.freeze()`. Full collections otherwise re-scan
    them every ~2,000 requests (~50 ms each, ~25 µs a request). Runs in a thread once the app
    is built, so readiness does not wait for it; a request that needs prices first waits on
    the map's lock as it would have parsed it itself. It starts a second after the app is
    built: the server binds and answers its first health checks without competing for the
    GIL."""
    time.sleep(SETTLE_AFTER_S)
    app.state.triage.shared.prices.load()
    gc.collect()
    gc.freeze()


def settle_later(app: Any) -> Any:
    threading.Thread(target=_settle, args=(app,), name="triage-settle", daemon=True).start()
    return app


def app_factory() -> Any:
    """uvicorn's factory for `--workers N`: each worker builds its own app from the config."""
    from triage import logs
    from triage.api import create_app

    config = _load(os.environ[CONFIG_ENV])
    logs.configure(config.server.log_level)
    app = create_app(
        config,
        multiproc_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
        config_source=_config_source(os.environ[CONFIG_ENV]),
        bind_host=os.environ.get(BIND_HOST_ENV),
    )
    return settle_later(app)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from triage.api.server import server_options

    config = _load(args.config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if not config.auth.enabled:
        if not _is_loopback(host) and not config.auth.allow_public_without_keys:
            print(
                f"refusing to listen on {host}: no client keys are configured (auth.keys), so "
                "anyone who can reach it could spend your API keys. Configure keys, listen on "
                "127.0.0.1, or set auth.allow_public_without_keys: true.",
                file=sys.stderr,
            )
            return 1
        print(
            f"no client keys configured: serving without authentication on {host}", file=sys.stderr
        )
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if args.workers > 1 and (problem := _workers_problem(config)) is not None:
        print(problem, file=sys.stderr)
        return 1
    if args.workers > 1:
        os.environ[CONFIG_ENV] = str(Path(args.config).resolve())
        os.environ[BIND_HOST_ENV] = host
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="triage-prom-"))
        uvicorn.run(
            "triage.cli:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level=config.server.log_level,
            access_log=False,
            **server_options(config.server),
        )
        return 0
    from triage import logs
    from triage.api import create_app

    logs.configure(config.server.log_level)
    uvicorn.run(
        settle_later(create_app(config, config_source=_config_source(args.config), bind_host=host)),
        host=host,
        port=port,
        log_level=config.server.log_level,
        access_log=False,
        **server_options(config.server),
    )
    return 0


def _workers_problem(config: Config) -> str | None:
    """Worker processes share nothing in memory: with per-key limits, N workers would enforce
    N times each limit. They must share a state file instead."""
    from triage.access.guard import limited

    if config.state.backend != "memory" or not any(limited(k) for k in config.auth.keys):
        return None
    return (
        "refusing --workers > 1: client keys have rpm, tpm or budget limits, and with "
        "`state.backend: memory` each worker would count them on its own (N workers, N times "
        "every limit). Set `state: {backend: sqlite, path: triage-state.db}` so the workers "
        "share one set of counters, or run one worker."
    )


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config_source(path: str) -> Any:
    return lambda: _load(path)


def cmd_check_config(args: argparse.Namespace) -> int:
    print(summary(_load(args.path)))
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from triage.classify import Classifier

    result = Classifier.load(Path(args.weights) if args.weights else None).classify_text(args.text)
    print(
        f"task={result.task} tier={result.tier} confidence={result.confidence:.3f} "
        f"difficulty={result.difficulty:.2f} reason={result.reason}"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from triage.classify import Classifier, evaluate, read_rows

    classifier = Classifier.load(Path(args.weights) if args.weights else None)
    reports = {path: evaluate(classifier, read_rows(Path(path))) for path in args.data}
    if args.json:
        payload = {path: r.to_json() for path, r in reports.items()}
        # One file: its report alone, as before; several: keyed by file.
        print(json.dumps(payload.popitem()[1] if len(payload) == 1 else payload, indent=2))
        return 0
    for path, report in reports.items():
        print(f"== {path}\n{report.render()}\n")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from triage.classify import Classifier, evaluate, read_jsonl, read_rows, save, train

    rows = read_jsonl(Path(args.data))
    if args.base:
        examples: dict[str, list[str]] = {}
        for text, label in rows:
            examples.setdefault(label, []).append(text)
        classifier = Classifier.load().with_examples(examples)
    else:
        classifier = train(rows)
    path = save(classifier, Path(args.out), {"command": "triage train", "rows": len(rows)})
    print(f"trained on {len(rows)} rows; wrote {path}")
    print(f"use it with `triage: {{classifier_path: {args.out}}}` in your config")
    measured = read_rows(Path(args.eval)) if args.eval else read_rows(Path(args.data))
    what = args.eval or f"{args.data} (the training rows: optimistic; pass --eval FILE)"
    print(f"\n== evaluation on {what}\n{evaluate(classifier, measured).render()}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """The report from the config's ledger (its SQLite file or PostgreSQL table), or from the
    SQLite file `--ledger` names; aggregated by the database, never loaded row by row."""
    import time

    from triage.config.routes import LedgerSettings
    from triage.ledger import open_ledger
    from triage.report import parse_since

    settings = _load(args.config).triage.ledger if args.config and not args.ledger else None
    if settings is None or settings.backend == "sqlite":
        path = args.ledger or (settings.path if settings else None)
        if path is None or not Path(path).exists():
            print(f"no ledger at {path}; pass --ledger PATH or --config PATH", file=sys.stderr)
            return 1
        settings = LedgerSettings(path=path)
    since = parse_since(args.since, now=time.time()) if args.since else None
    ledger = open_ledger(settings)
    try:
        report = ledger.report(by=args.by, since=since, key_id=None)
    finally:
        ledger.close()
    print(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return 0


def cmd_fake_upstream(args: argparse.Namespace) -> int:
    from triage.fakeupstream import main as fake_main

    code: int = fake_main(args.rest)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triage", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve the gateway")
    p.add_argument("--config", required=True)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("path")
    p.set_defaults(func=cmd_check_config)
    p = sub.add_parser("classify", help="classify one prompt")
    p.add_argument("text")
    p.add_argument("--weights")
    p.set_defaults(func=cmd_classify)
    p = sub.add_parser("eval", help="measure the classifier on labeled prompts")
    p.add_argument("--data", required=True, action="append", help="JSONL file; repeatable")
    p.add_argument("--weights")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("train", help="fit the classifier on your own labeled prompts")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--base", action="store_true", help="adapt the shipped model, not from scratch")
    p.add_argument("--eval", help="labeled JSONL to measure the result on")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("report", help="spend, savings and volume from the usage ledger")
    p.add_argument("--config")
    p.add_argument("--ledger")
    p.add_argument("--since")
    p.add_argument("--by", choices=["task", "route", "deployment", "day", "tier"], default="task")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("fake-upstream", help="run the fake OpenAI/Ollama upstream", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_fake_upstream)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["fake-upstream"]:
        # argparse's REMAINDER refuses a remainder that starts with an option (`--port P`), so
        # the fake upstream's own parser gets its arguments untouched.
        return cmd_fake_upstream(argparse.Namespace(rest=words[1:]))
    from triage.ledger import LedgerUnavailable

    args = _parser().parse_args(words)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"{exc.source}: invalid config", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (ValueError, OSError, LedgerUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
