"""Cost of one request: bundled, override, unknown and compute prices; savings; formatting."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

import triage.metering as metering
from triage.metering import (
    ComputePrice,
    Price,
    PriceBook,
    ThroughputEstimator,
    Usage,
    backend_compute_seconds,
    bundled_price_map_path,
    counterfactual_cost,
    format_usd,
    llamacpp_compute_seconds,
    ollama_compute_seconds,
    saving,
)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    loaded = PriceBook()
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def raw_map() -> dict[str, Any]:
    with bundled_price_map_path().open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


def usage(prompt: int = 1000, completion: int = 500, seconds: float | None = None) -> Usage:
    return Usage(prompt, completion, "upstream", compute_seconds=seconds)


def test_gpt_4o_costs_what_the_bundled_map_says(book: PriceBook, raw_map: dict[str, Any]) -> None:
    entry = raw_map["gpt-4o"]
    expected = (
        Decimal(str(entry["input_cost_per_token"])) * 1000
        + Decimal(str(entry["output_cost_per_token"])) * 500
    )
    price = book.price_for("gpt-4o")
    assert price.source == "bundled"
    assert book.cost(price, usage()) == expected
    # Pinned too: $2.50 / $10 per million tokens. A silent price-map change must fail here.
    assert book.cost(price, usage()) == Decimal("0.0075")


def test_provider_prefixed_name_finds_the_bare_bundled_entry(book: PriceBook) -> None:
    assert book.price_for("openai/gpt-4o") == book.price_for("gpt-4o")
    assert book.price_for("OpenAI/GPT-4o") == book.price_for("gpt-4o")


def test_prefixed_bundled_keys_are_found_as_written(
    book: PriceBook, raw_map: dict[str, Any]
) -> None:
    entry = raw_map["ollama/llama3"]
    price = book.price_for("ollama/llama3")
    assert price.source == "bundled"
    assert price.input_per_token == Decimal(str(entry["input_cost_per_token"]))


def test_an_override_beats_the_bundled_price(book: PriceBook) -> None:
    override = Price.from_config(1e-06, "0.000002")
    price = book.price_for("gpt-4o", override=override)
    assert price.source == "override"
    assert book.cost(price, usage()) == Decimal("0.002")


def test_config_prices_become_exact_decimals_not_binary_floats() -> None:
    price = Price.from_config(2.5e-06, 1e-05)
    assert price.input_per_token == Decimal("0.0000025")
    assert price.output_per_token == Decimal("0.00001")
    with pytest.raises(TypeError):
        Price(0.1, Decimal(0), "override")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Price.from_config(-1, 0)
    with pytest.raises(ValueError):
        ComputePrice.from_config("lots")


def test_an_unknown_model_costs_zero_and_says_unknown(book: PriceBook) -> None:
    price = book.price_for("hosted_vllm/acme/finetune-7b")
    assert price.source == "unknown"
    assert book.cost(price, usage()) == 0


def test_context_window_of_a_known_model_comes_from_the_map(
    book: PriceBook, raw_map: dict[str, Any]
) -> None:
    assert book.context_window("gpt-4o") == raw_map["gpt-4o"]["max_input_tokens"] == 128000
    assert book.context_window("openai/gpt-4o") == 128000
    assert book.context_window("hosted_vllm/acme/finetune-7b") is None


def test_the_map_is_read_once_per_book_and_not_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    raw: dict[str, Any] = {"m": {"input_cost_per_token": Decimal("1E-6"), "litellm_provider": "p"}}

    def fake_read(path: object = None) -> dict[str, Any]:
        calls.append(1)
        return raw

    monkeypatch.setattr(metering, "read_bundled_map", fake_read)
    fresh = PriceBook()
    assert calls == []
    assert fresh.price_for("p/m").input_per_token == Decimal("1E-6")
    assert fresh.context_window("m") is None
    assert calls == [1]


def test_reading_the_price_map_does_not_import_litellm() -> None:
    code = (
        "import sys\nfrom triage.metering import PriceBook\n"
        "assert PriceBook().price_for('gpt-4o').source == 'bundled'\n"
        "assert 'litellm' not in sys.modules, 'litellm was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_local_cost_from_ollama_nanosecond_durations() -> None:
    body = {"prompt_eval_duration": 500_000_000, "eval_duration": 1_500_000_000}
    seconds = ollama_compute_seconds(body)
    assert seconds == 2.0
    assert backend_compute_seconds(body) == 2.0
    cost = PriceBook.compute_cost(
        ComputePrice(Decimal("1.80")), usage(seconds=seconds), upstream_seconds=9.0, throughput=10.0
    )
    assert cost == Decimal("0.001")  # 1.80 $/h x 2 s; reported time beats throughput and wall


def test_local_cost_from_llamacpp_timings() -> None:
    body = {"timings": {"prompt_ms": 250.0, "predicted_ms": 3350.0, "predicted_n": 42}}
    seconds = llamacpp_compute_seconds(body)
    assert seconds == pytest.approx(3.6)
    assert backend_compute_seconds(body) == seconds
    cost = PriceBook.compute_cost(
        ComputePrice(Decimal("1")), usage(seconds=seconds), upstream_seconds=9.0, throughput=None
    )
    assert cost == Decimal("0.001")


def test_backends_without_timing_report_none() -> None:
    assert ollama_compute_seconds({"model": "llama3"}) is None
    assert llamacpp_compute_seconds({"timings": "n/a"}) is None
    assert backend_compute_seconds({}) is None
    # Ollama leaves out prompt_eval_duration when the prompt was cached: the rest still counts.
    assert ollama_compute_seconds({"eval_duration": 250_000_000}) == 0.25


def test_local_cost_via_measured_throughput() -> None:
    estimator = ThroughputEstimator(alpha=0.2)
    estimator.observe("gpu-box", 900, 2.0)
    assert estimator.tokens_per_second("gpu-box") == 450.0
    cost = PriceBook.compute_cost(
        ComputePrice(Decimal("3.6")),
        usage(300, 600),
        upstream_seconds=30.0,
        throughput=estimator.tokens_per_second("gpu-box"),
    )
    assert cost == Decimal("0.002")  # 900 tokens / 450 tok/s = 2 s at 3.6 $/h


def test_throughput_estimate_is_an_ewma_per_deployment() -> None:
    estimator = ThroughputEstimator(alpha=0.2)
    estimator.observe("a", 900, 2.0)
    estimator.observe("a", 900, 1.0)
    estimator.observe("a", 0, 1.0)  # no tokens: no signal
    estimator.observe("a", 10, 0.0)  # no time: no signal
    assert estimator.tokens_per_second("a") == pytest.approx(450 + 0.2 * (900 - 450))
    assert estimator.tokens_per_second("b") is None


def test_local_cost_falls_back_to_upstream_wall_time() -> None:
    cost = PriceBook.compute_cost(
        ComputePrice(Decimal("0.5")), usage(), upstream_seconds=7.2, throughput=None
    )
    assert cost == Decimal("0.001")


def test_request_cost_prefers_override_then_compute_then_bundled(book: PriceBook) -> None:
    compute = ComputePrice(Decimal("3.6"))
    local = book.request_cost("ollama/llama3", usage(seconds=1.0), compute=compute)
    assert (local.usd, local.source) == (Decimal("0.001"), "compute")
    override = Price.from_config("0.000001", "0")
    explicit = book.request_cost("ollama/llama3", usage(), override=override, compute=compute)
    assert (explicit.usd, explicit.source) == (Decimal("0.001"), "override")
    cloud = book.request_cost("gpt-4o", usage())
    assert (cloud.usd, cloud.source) == (Decimal("0.0075"), "bundled")


def test_saving_is_counterfactual_minus_actual(book: PriceBook) -> None:
    used = usage()
    actual = PriceBook.compute_cost(
        ComputePrice(Decimal("1.80")), usage(seconds=2.0), upstream_seconds=2.0, throughput=None
    )
    counterfactual = counterfactual_cost(book, "openai/gpt-4o", used)
    assert counterfactual == Decimal("0.0075")
    assert saving(counterfactual=counterfactual, actual=actual) == Decimal("0.0065")


def test_a_route_dearer_than_the_reference_keeps_its_negative_saving(book: PriceBook) -> None:
    cheap = counterfactual_cost(book, "gpt-4o-mini", usage())
    assert saving(counterfactual=cheap, actual=Decimal("0.0075")) < 0


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.0075"), "0.0075"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("0.000000004"), "0"),
        (Decimal("12"), "12"),
        (Decimal("12.50"), "12.5"),
        (Decimal("1.234567891"), "1.23456789"),
        (Decimal("-0.0065"), "-0.0065"),
        (Decimal("-0.000000001"), "0"),
    ],
)
def test_format_usd_is_plain_and_at_most_8_places(amount: Decimal, text: str) -> None:
    assert format_usd(amount) == text


def test_format_usd_rejects_non_finite() -> None:
    with pytest.raises(ValueError):
        format_usd(Decimal("NaN"))


def test_a_book_given_its_prices_never_reads_the_map(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_read(path: object = None) -> dict[str, Any]:
        raise AssertionError("the bundled map was read")

    monkeypatch.setattr(metering, "read_bundled_map", no_read)
    price = Price(Decimal("0.000001"), Decimal("0.000002"), "bundled")
    book = PriceBook({"acme/model": price}, context_windows={"acme/model": 4096})
    assert book.price_for("acme/model") == price
    assert book.price_for("gpt-4o").source == "unknown"
    assert book.context_window("acme/model") == 4096
