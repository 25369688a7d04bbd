"""Prometheus metrics of a worker: queue depth, batch sizes, job latency, outcomes and errors.

Each Worker owns a registry, so several workers (or tests) in one process do not collide.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)


class WorkerMetrics:
    def __init__(self, worker_id: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"registry": self.registry}
        self.queue_depth = Gauge("poembot_queue_depth", "Jobs in the stream (waiting or in flight)", **labels)
        self.pending = Gauge("poembot_pending_jobs", "Jobs delivered to a worker and not yet acked", **labels)
        self.batch_size = Histogram("poembot_batch_size", "Jobs per decoded batch", buckets=BATCH_BUCKETS,
                                    **labels)
        self.batch_seconds = Histogram("poembot_batch_seconds", "Wall time to run one batch",
                                       buckets=LATENCY_BUCKETS, **labels)
        self.job_latency = Histogram("poembot_job_latency_seconds", "Job creation to result published",
                                     ["kind"], buckets=LATENCY_BUCKETS, **labels)
        self.jobs = Counter("poembot_jobs", "Jobs finished", ["kind", "outcome"], **labels)
        self.errors = Counter("poembot_errors", "Errors by code", ["code"], **labels)
        self.redis_reconnects = Counter("poembot_redis_reconnects", "Times Redis was lost", **labels)
        self.dead_letters = Counter("poembot_dead_letters", "Jobs moved to the dead-letter stream", **labels)
        self.claimed = Counter("poembot_claimed_jobs", "Jobs taken over from a silent consumer", **labels)
        self.info = Gauge("poembot_worker_info", "Constant 1, labelled with the worker id", ["worker_id"],
                          **labels)
        self.info.labels(worker_id=worker_id).set(1)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on port (0 picks a free port, for tests)."""
        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        self.port = server.server_port
