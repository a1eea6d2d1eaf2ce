"""Prometheus metrics: requests observed here; queue depth, judgements and their latency read from
the broker and the database at each scrape (so every server replica reports the same)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


class _Recorded:
    """Collector of what the database and the broker hold."""

    def describe(self):
        return []  # read nothing when registered: the database is asked at scrape time only

    def collect(self):
        from workers.planning.judgements import judgement_counts, queue_depth, verdict_latencies

        depth = GaugeMetricFamily("celebdf_predict_queue_depth", "Messages waiting on the predict queue")
        try:
            value = queue_depth()
        except Exception:  # noqa: BLE001 - a broker down: the gauge is absent, /healthz says why
            value = None
        if value is not None:
            depth.add_metric([], value)
        yield depth
        by_status = GaugeMetricFamily("celebdf_judgements", "Judgements recorded, by status", labels=["status"])
        for status, count in judgement_counts().items():
            by_status.add_metric([status], count)
        yield by_status
        latencies = sorted(verdict_latencies())
        buckets, i = [], 0
        for bound in LATENCY_BUCKETS:
            while i < len(latencies) and latencies[i] <= bound:
                i += 1
            buckets.append((str(float(bound)), i))
        buckets.append(("+Inf", len(latencies)))
        histogram = HistogramMetricFamily("celebdf_judgement_seconds",
                                          "Seconds from upload (or command) to verdict, judged videos")
        histogram.add_metric([], buckets, sum_value=sum(latencies))
        yield histogram


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("celebdf_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.seconds = Histogram("celebdf_http_request_seconds", "Seconds to answer an HTTP request", ["route"],
                                 registry=self.registry)
        self.registry.register(_Recorded())

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.seconds.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
