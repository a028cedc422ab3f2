"""HTTP throughput with wrk on loopback: the CRM against bare Flask baselines, same gunicorn settings.

Each app (``bench/apps.py``) runs in its own gunicorn (one worker, ``BENCH_HTTP_THREADS`` threads, the
embedded store seeded identically); wrk keeps connections alive for a fixed duration and reports
requests/s and the latency distribution. Rounds alternate the two sides of each pair, and the median
round counts, so drift on a noisy machine hits both.
"""
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import requests

from tests.processes import Process, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DURATION_S = int(os.environ.get("BENCH_HTTP_SECONDS", "8"))
CONNECTIONS = int(os.environ.get("BENCH_HTTP_CONNECTIONS", "16"))
THREADS = int(os.environ.get("BENCH_HTTP_THREADS", "4"))
ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk_available():
    return shutil.which("wrk") is not None


class App(Process):
    def __init__(self, factory, env, log_dir):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = [str(VENV_BIN / "gunicorn"), f"bench.apps:{factory}()", "--bind", f"127.0.0.1:{self.port}",
                "--workers", "1", "--threads", str(THREADS), "--worker-class", "gthread",
                "--no-control-socket", "--log-level", "warning"]
        super().__init__(f"bench-{factory}", args, env, log_dir)

    def start(self):
        super().start()
        import requests

        def up():
            if not self.running():
                raise RuntimeError(self.output()[-2000:])
            try:
                return requests.get(f"{self.base}/healthz", timeout=1).status_code < 500
            except requests.RequestException:
                return False

        wait_until(up, 60, interval=0.2, what=self.name)
        return self


def wrk(url, headers=(), script=None, seconds=None):
    """``{"rps", "p50_ms", "p99_ms", "non2xx"}`` of one wrk run (``seconds``: else BENCH_HTTP_SECONDS)."""
    args = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds or DURATION_S}s", "--latency", url]
    for header in headers:
        args += ["-H", header]
    if script:
        args += ["-s", script]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    latency = {m.group(1): float(m.group(2)) * UNITS[m.group(3)]
               for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": latency.get("50"), "p99_ms": latency.get("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def _median_run(runs):
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def measure():
    """Rows ``{"measure", "crm", "baseline", "ratio", "goal"}`` for the HTTP pairs."""
    key = "crm_" + secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URI", "MONGODB_URI")}
    env.update({"BENCH_API_KEY": key, "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    auth = [f"Authorization: Bearer {key}"]
    with tempfile.TemporaryDirectory() as tmp:
        post = Path(tmp) / "post.lua"
        post.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                        'wrk.body = \'{"customerId": "64b7f0000000000000000001", "amount": 9.99}\'\n')
        apps = {name: App(name, env, tmp).start() for name in ("crm", "bare", "memory")}
        try:
            _same_answer(apps, key)
            runs = {name: [] for name in ("crm_list", "bare_list", "memory_list", "crm_post", "bare_post")}
            for _ in range(ROUNDS):
                runs["crm_list"].append(wrk(f"{apps['crm'].base}/api/customers?per_page=50", auth))
                runs["bare_list"].append(wrk(f"{apps['bare'].base}/api/customers?per_page=50"))
                runs["memory_list"].append(wrk(f"{apps['memory'].base}/api/customers?per_page=50"))
                runs["crm_post"].append(wrk(f"{apps['crm'].base}/api/orders", auth, str(post)))
                runs["bare_post"].append(wrk(f"{apps['bare'].base}/api/orders", [], str(post)))
        finally:
            for app in apps.values():
                app.stop()
    med = {name: _median_run(r) for name, r in runs.items()}
    for name, run in med.items():
        if run["non2xx"]:
            raise RuntimeError(f"{name}: {run['non2xx']} responses were not 2xx")
    return [
        _row("`GET /api/customers?per_page=50` req/s, 1,000 customers",
             "bare Flask, same query on the same store, same JSON, same gunicorn", med["crm_list"],
             med["bare_list"], "≥ 0.8"),
        _row("the same request", "bare Flask returning the same JSON bytes from memory", med["crm_list"],
             med["memory_list"], "report (the store's share of the cost)"),
        _row("`POST /api/orders` req/s", "bare Flask doing the same `insert_one` + `update_one`",
             med["crm_post"], med["bare_post"], "≥ 0.6"),
    ]


def _same_answer(apps, key):
    """The baselines must answer the CRM's bytes, or the ratio compares different work (the bare list
    once lacked fields the CRM had gained since)."""
    url = "/api/customers?per_page=50"
    crm = requests.get(apps["crm"].base + url, headers={"Authorization": f"Bearer {key}"}, timeout=30).content
    for name in ("bare", "memory"):
        if requests.get(apps[name].base + url, timeout=30).content != crm:
            raise SystemExit(f"bench/apps.py: the {name} list answers other bytes than the CRM's: fix the baseline")


def _row(measure, baseline, crm, base, goal):
    return {"measure": measure, "baseline": baseline, "goal": goal, "ratio": crm["rps"] / base["rps"],
            "crm": f"{crm['rps']:,.0f} req/s (p50 {crm['p50_ms']:.1f} ms, p99 {crm['p99_ms']:.1f} ms)",
            "base": f"{base['rps']:,.0f} req/s (p50 {base['p50_ms']:.1f} ms, p99 {base['p99_ms']:.1f} ms)"}


def report(rows):
    for row in rows:
        print(f"{row['measure']}: {row['crm']} vs {row['baseline']}: {row['base']} | ratio {row['ratio']:.2f}"
              f" (goal {row['goal']})")
    return rows
