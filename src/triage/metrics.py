"""Every Prometheus collector Triage exposes, created on an injected registry.

Label values come only from config names (groups, deployment ids, route names) and enums
(tasks, tiers, statuses, failure kinds), never from client strings, so cardinality is bounded
by the config. With several workers, prometheus-client's multiprocess mode aggregates them
(PROMETHEUS_MULTIPROC_DIR is set by `triage serve --workers N`).

The request path counts into `Metrics.tally` (plain floats, telemetry/tally.py) rather than
into the children themselves; collecting the registry publishes them first, and with several
workers each publishes every half second and at shutdown (see tally.py for what a scrape sees).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from triage.telemetry.tally import Tally

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FAST_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.tally = Tally()
        registry.register(self.tally)  # first: a collect publishes before it reads the values
        r = registry
        self.requests = Counter(
            "triage_requests",
            "Requests by task, tier, route, deployment and HTTP status",
            ["endpoint", "task", "tier", "route", "deployment", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "triage_request_duration_seconds",
            "Whole request time as seen by Triage",
            ["endpoint", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "triage_time_to_first_token_seconds",
            "Streams: time until the first chunk reached the client",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream = Histogram(
            "triage_upstream_duration_seconds",
            "Time spent waiting on upstream deployments",
            ["deployment"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "triage_overhead_seconds",
            "Time spent in Triage itself (request time minus upstream time)",
            ["endpoint"],
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "triage_tokens", "Tokens by direction", ["direction", "route"], registry=r
        )
        self.cost = Counter("triage_cost_usd", "Spend in US dollars", ["task", "route"], registry=r)
        self.avoided = Counter(
            "triage_cost_avoided_usd",
            "Counterfactual cost on the reference model minus actual cost",
            ["task", "route"],
            registry=r,
        )
        self.classifications = Counter(
            "triage_classification",
            "Classifications by task and reason",
            ["task", "reason"],
            registry=r,
        )
        self.classification_seconds = Histogram(
            "triage_classification_seconds",
            "Classifier latency",
            buckets=FAST_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "triage_request_errors",
            "Failed requests by what failed (an error kind), and where the last attempt went",
            ["endpoint", "route", "deployment", "error"],
            registry=r,
        )
        self.retries = Counter(
            "triage_retries", "Retries inside a model group", ["group", "kind"], registry=r
        )
        self.fallbacks = Counter(
            "triage_fallbacks",
            "Moves from one model group to the next",
            ["from_group", "to_group", "reason"],
            registry=r,
        )
        self.store_failures = Counter(
            "triage_state_store_failures",
            "Calls to the shared state store that failed, by operation and the policy applied",
            ["operation", "policy"],
            registry=r,
        )
        self.cooldowns = Counter(
            "triage_cooldowns", "Deployments put into cooldown", ["deployment"], registry=r
        )
        self.deployment_state = Gauge(
            "triage_deployment_state",
            "1 for the deployment's current state (healthy, cooling_down, probing, unreachable)",
            ["deployment", "state"],
            registry=r,
            multiprocess_mode="liveall",
        )
        self.in_flight = Gauge(
            "triage_in_flight_requests",
            "Requests being served",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_lookups = Counter(
            "triage_cache_lookups",
            "Response cache lookups by route and result (hit, miss)",
            ["route", "result"],
            registry=r,
        )
        self.cache_saved = Counter(
            "triage_cache_saved_usd",
            "What the answers served from the response cache cost when they were first made",
            ["route"],
            registry=r,
        )
        self.sensitive = Counter(
            "triage_sensitive_requests",
            "Requests marked sensitive, by detector",
            ["detector"],
            registry=r,
        )
        # A gauge rather than an Info: Info is not supported in multiprocess mode.
        self.config_info = Gauge(
            "triage_config_info",
            "1, labelled with the version and the loaded config's shape",
            ["version", "deployments", "groups"],
            registry=r,
            multiprocess_mode="max",
        )
        # Hot twins of the unlabelled metrics every request moves (published on collect).
        self.classify_time = self.tally.histogram(self.classification_seconds)
        self.requests_in_flight = self.tally.gauge(self.in_flight)
