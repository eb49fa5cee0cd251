"""Prometheus metrics of the serving ingress (``GET /metrics``, text exposition format).

Names (all labelled by ``model`` and ``version``):

- ``oms_serve_requests_total{code,protocol}``: infer requests answered, by HTTP status code (gRPC answers count
  under the HTTP status of the same meaning) and protocol (``rest``, ``grpc``)
- ``oms_serve_request_errors_total{kind,protocol}``: failed requests (``validation``, ``overload``, ``model``,
  ``unavailable``, ``timeout``, ``auth``, ``too_large``)
- ``oms_serve_request_latency_seconds``: histogram of infer latency inside the ingress
- ``oms_serve_batch_size``: histogram of samples per dispatched batch
- ``oms_serve_batch_requests``: histogram of requests per dispatched batch
- ``oms_serve_queue_depth``: gauge of samples waiting in the batcher queue
- ``oms_serve_retries_total``: batches re-sent to another replica after their replica died

With several front ends each keeps its own registry; ``merge_expositions`` sums them (counters,
histogram buckets/sums/counts and the queue-depth gauge all add up) so ``/metrics`` on any front
end reports the whole server.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["ServeMetrics", "CONTENT_TYPE_LATEST", "merge_expositions"]

_LAT_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServeMetrics:
    """One registry per ingress process (not the global default registry)."""

    def __init__(self) -> None:
        disable_created_metrics()  # no *_created series: they double the exposition for nothing
        self.registry = CollectorRegistry(auto_describe=True)
        lv = ["model", "version"]
        self.requests = Counter(
            "oms_serve_requests",
            "Infer requests answered, by HTTP status code and protocol",
            lv + ["code", "protocol"],
            registry=self.registry,
        )
        self.errors = Counter(
            "oms_serve_request_errors",
            "Failed infer requests by kind",
            lv + ["kind", "protocol"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "oms_serve_request_latency_seconds",
            "Infer request latency in the ingress (s)",
            lv,
            buckets=_LAT_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "oms_serve_batch_size", "Samples per dispatched batch", lv, buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.batch_requests = Histogram(
            "oms_serve_batch_requests",
            "Requests per dispatched batch",
            lv,
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "oms_serve_queue_depth", "Samples waiting in the batcher queue", lv, registry=self.registry
        )
        self.retries = Counter(
            "oms_serve_retries", "Batches retried on another replica after a replica died", lv, registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def merge_expositions(texts: list[bytes]) -> bytes:
    """Sum Prometheus text expositions sample by sample (same name and labels); keeps first-seen order."""
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, tuple[str, str, dict[tuple, float]]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text.decode()):
            _, _, samples = families.setdefault(fam.name, (fam.type, fam.documentation, {}))
            for smp in fam.samples:
                key = (smp.name, tuple(smp.labels.items()))
                samples[key] = samples.get(key, 0.0) + float(smp.value)
    lines: list[str] = []
    for name, (typ, doc, samples) in families.items():
        shown = name + "_total" if typ == "counter" else name
        lines += [f"# HELP {shown} {doc}", f"# TYPE {shown} {typ}"]
        for (sname, labels), value in samples.items():
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{sname}{{{lab}}} {value!r}" if lab else f"{sname} {value!r}")
    return ("\n".join(lines) + "\n").encode()
