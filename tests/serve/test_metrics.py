"""Merging the Prometheus expositions of several front ends (no Ray)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from openmindspore.serve.metrics import ServeMetrics, merge_expositions


def _samples(text: bytes) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text.decode())
        for s in fam.samples
    }


def test_merge_sums_counters_histograms_and_gauges():
    a, b = ServeMetrics(), ServeMetrics()
    lab = {"model": "m", "version": "1"}
    a.requests.labels(code="200", protocol="rest", **lab).inc(3)
    b.requests.labels(code="200", protocol="rest", **lab).inc(4)
    b.requests.labels(code="429", protocol="grpc", **lab).inc()
    a.latency.labels(**lab).observe(0.004)
    b.latency.labels(**lab).observe(0.3)
    a.queue_depth.labels(**lab).set(2)
    b.queue_depth.labels(**lab).set(5)
    merged = _samples(merge_expositions([a.render(), b.render()]))
    key = lambda name, **kw: (name, tuple(sorted({**lab, **kw}.items())))  # noqa: E731
    assert merged[key("oms_serve_requests_total", code="200", protocol="rest")] == 7
    assert merged[key("oms_serve_requests_total", code="429", protocol="grpc")] == 1
    assert merged[key("oms_serve_request_latency_seconds_count")] == 2
    assert merged[key("oms_serve_request_latency_seconds_bucket", le="0.005")] == 1
    assert merged[key("oms_serve_request_latency_seconds_bucket", le="+Inf")] == 2
    assert abs(merged[key("oms_serve_request_latency_seconds_sum")] - 0.304) < 1e-9
    assert merged[key("oms_serve_queue_depth")] == 7
    assert merge_expositions([a.render()]).count(b"# TYPE oms_serve_requests_total counter") == 1
