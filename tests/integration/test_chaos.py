"""The chaos run as a test: under random upstream faults every plain request succeeds, every
stream completes or ends with a well-formed error event, nothing outlives its deadline, and the
server's memory stays flat."""

from __future__ import annotations

from tests.chaos import DEADLINE, run


def test_chaos_run_loses_nothing_and_respects_deadlines() -> None:
    report = run(1000, lane="native")
    summary = report.summary()
    assert report.requests == 1000
    assert report.plain_ok == report.plain, summary
    assert report.streams_completed + report.stream_errors_well_formed == report.streams, summary
    assert report.malformed == 0, summary
    assert max(report.latencies) <= DEADLINE + 0.5, summary
    assert report.rss_after_all_mb <= report.rss_after_100_mb * 1.10, summary
