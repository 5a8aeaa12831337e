#!/usr/bin/env python3
"""Helpers of scripts/side-by-side.sh (standard library only).

  serve  PORT SERIES            metrics target: SERIES Gardener-shaped series on /metrics,
                                values move on every request (counters grow, gauges flip)
  port                          prints a free TCP port on 127.0.0.1
  wait   URL SECONDS            waits until URL answers 2xx
  sample OUT SECONDS NAME=PID… [--counter NAME=URL=METRIC …]
                                samples /proc/PID/{status,stat} every second for SECONDS and
                                the counters at start and end; writes JSON to OUT
  count  PROM_URL SELECTOR T RANGE_S   sum(count_over_time(SELECTOR[RANGE_S s])) at time T
  report RESULTS.jsonl          prints the Markdown tables
"""

import json
import os
import random
import sys
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

# Per cluster: 3 + 12 + 1 + 3 + 1 = 20 series.
KINDS = ("seed", "shoot", "vpn")
CODES = ("200", "201", "404", "500")
VERBS = ("GET", "LIST", "WATCH")
QUANTILES = ("0.5", "0.9", "0.99")
PER_CLUSTER = len(KINDS) + len(CODES) * len(VERBS) + 1 + len(QUANTILES) + 1


# ---------------------------------------------------------------- serve
def serve(port, series):
    clusters = max(1, series // PER_CLUSTER)
    names = [f"shoot--project{i % 50}--cluster{i}" for i in range(clusters)]
    counters = {}
    rng = random.Random(42)

    def render():
        out = ["# TYPE shoot:availability untyped"]
        for c in names:
            for kind in KINDS:
                v = 1 if rng.random() < 0.995 else 0
                out.append(f'shoot:availability{{cluster="{c}",kind="{kind}",project="{c.split("--")[1]}"}} {v}')
        out.append("# TYPE apiserver_request_total counter")
        for c in names:
            for code in CODES:
                for verb in VERBS:
                    key = (c, code, verb)
                    step = 500 if code[0] == "2" else 2
                    counters[key] = counters.get(key, 0) + rng.randint(0, step)
                    out.append(
                        f'apiserver_request_total{{cluster="{c}",code="{code}",component="apiserver",'
                        f'resource="pods",scope="cluster",verb="{verb}"}} {counters[key]}'
                    )
        out.append("# TYPE apiserver_request_terminations_total counter")
        for c in names:
            key = (c, "term")
            counters[key] = counters.get(key, 0) + (1 if rng.random() < 0.05 else 0)
            out.append(f'apiserver_request_terminations_total{{cluster="{c}",code="429",verb="LIST"}} {counters[key]}')
        out.append("# TYPE shoot:apiserver_latency_seconds:quantile untyped")
        for c in names:
            for q in QUANTILES:
                v = round(0.02 + rng.random() * float(q) * 0.5, 4)
                out.append(f'shoot:apiserver_latency_seconds:quantile{{cluster="{c}",quantile="{q}",verb="GET"}} {v}')
        out.append("# TYPE probe_success untyped")
        for c in names:
            v = 1 if rng.random() < 0.999 else 0
            out.append(f'probe_success{{cluster="{c}",job="blackbox-apiserver",instance="api.{c}"}} {v}')
        # Not selected by match[]: /federate filters them out for both contenders.
        out.append("# TYPE node_cpu_seconds_total counter")
        for c in names[: max(1, len(names) // 10)]:
            out.append(f'node_cpu_seconds_total{{cluster="{c}",cpu="0",mode="idle"}} {time.time():.3f}')
        return ("\n".join(out) + "\n").encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    print(f"serving {clusters * PER_CLUSTER} series ({clusters} clusters) on 127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# ---------------------------------------------------------------- small tools
def free_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    print(port)


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait(url, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            get(url, timeout=2)
            return
        except Exception:  # noqa: BLE001
            time.sleep(0.5)
    sys.exit(f"timed out after {seconds}s waiting for {url}")


def counter(url, metric):
    """Sum of the samples named `metric` (any labels) on a /metrics page; None if unreachable."""
    try:
        text = get(url)
    except Exception:  # noqa: BLE001
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(metric + "{") or line.startswith(metric + " "):
            total += float(line.rsplit(" ", 1)[1] if "}" not in line else line.rsplit("}", 1)[1].split()[0])
    return total


def proc(pid):
    """(rss_kib, hwm_kib, cpu_seconds) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    fields = {}
    for line in status.splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    rss = int(fields.get("VmRSS", "0 kB").split()[0])
    hwm = int(fields.get("VmHWM", "0 kB").split()[0])
    rest = stat.rsplit(")", 1)[1].split()  # fields after comm; utime/stime are fields 14/15
    cpu = (int(rest[11]) + int(rest[12])) / CLK_TCK
    return rss, hwm, cpu


# ---------------------------------------------------------------- sample
def sample(out, seconds, args):
    procs, counters = {}, {}
    it = iter(args)
    for a in it:
        if a == "--counter":
            name, url, metric = next(it).split("=", 2)
            counters[name] = (url, metric)
        else:
            name, pid = a.split("=")
            procs[name] = int(pid)
    load0 = open("/proc/loadavg").read().split()[0]
    start_counters = {n: counter(u, m) for n, (u, m) in counters.items()}
    t0 = time.time()
    first = {n: proc(p) for n, p in procs.items()}
    rss = {n: [] for n in procs}
    gone = set()
    tick = 0
    while True:
        for n, p in procs.items():
            s = proc(p)
            if s is None:
                gone.add(n)
            else:
                rss[n].append(s[0])
        tick += 1
        next_at = t0 + tick
        if next_at > t0 + seconds:
            break
        time.sleep(max(0.0, next_at - time.time()))
    last = {n: proc(p) for n, p in procs.items()}
    t1 = time.time()
    end_counters = {n: counter(u, m) for n, (u, m) in counters.items()}
    load1 = open("/proc/loadavg").read().split()[0]
    result = {"t0": t0, "t1": t1, "loadavg": [load0, load1], "procs": {}, "counters": {}}
    for n in procs:
        if first[n] is None or last[n] is None:
            result["procs"][n] = {"error": "process exited during the run"}
            continue
        r = rss[n]
        result["procs"][n] = {
            "pid": procs[n],
            "samples": len(r),
            "peak_rss_kib": max(r),
            "mean_rss_kib": sum(r) / len(r),
            "hwm_kib": last[n][1],
            "cpu_s": last[n][2] - first[n][2],
            "exited": n in gone,
        }
    for n in counters:
        a, b = start_counters[n], end_counters[n]
        result["counters"][n] = None if a is None or b is None else b - a
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


# ---------------------------------------------------------------- count
def count(prom, selector, t, range_s):
    q = f"sum(count_over_time({selector}[{int(range_s)}s]))"
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": f"{float(t):.3f}"})
    resp = json.loads(get(url, timeout=60))
    if resp.get("status") != "success":
        sys.exit(f"query {q}: {resp}")
    res = resp["data"]["result"]
    print(int(float(res[0]["value"][1])) if res else 0)


# ---------------------------------------------------------------- report
def mib(kib):
    return f"{kib / 1024:.1f}"


def report(path):
    runs = [json.loads(line) for line in open(path) if line.strip()]
    if not runs:
        sys.exit("no results")
    meta = runs[0]
    print(
        f"\n### Side-by-side: {meta['series']} series, scrape every {meta['interval']}s, "
        f"{meta['duration']}s measured after {meta['warmup']}s warm-up\n"
    )
    print(f"Expected samples per contender: {meta['series']} × {meta['duration']}/{meta['interval']} = "
          f"{meta['expected']}\n")
    print("| contender | process | peak RSS MiB | mean RSS MiB | VmHWM MiB | CPU s | CPU s / 1000 samples "
          "| samples delivered | bytes on wire | B / sample |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for run in runs:
        delivered = run["delivered"]
        wire = run.get("wire_bytes")
        per_k = delivered / 1000 if delivered else None
        total_cpu, total_peak, total_mean = 0.0, 0, 0.0
        rows = [p for p in run["sampled"]["procs"].items() if p[0] != "sink"]
        for name, p in rows:
            if "error" in p:
                print(f"| {run['contender']} | {name} | {p['error']} | | | | | | | |")
                continue
            total_cpu += p["cpu_s"]
            total_peak += p["peak_rss_kib"]
            total_mean += p["mean_rss_kib"]
            cpu_k = f"{p['cpu_s'] / per_k:.4f}" if per_k else "n/a"
            print(
                f"| {run['contender']} | {name} | {mib(p['peak_rss_kib'])} | {mib(p['mean_rss_kib'])} | "
                f"{mib(p['hwm_kib'])} | {p['cpu_s']:.2f} | {cpu_k} | {delivered} | "
                f"{'' if name != run['wire_process'] or wire is None else f'{int(wire)}'} | "
                f"{'' if name != run['wire_process'] or not wire or not delivered else f'{wire / delivered:.1f}'} |"
            )
        if len(rows) > 1:
            cpu_k = f"{total_cpu / per_k:.4f}" if per_k else "n/a"
            print(
                f"| {run['contender']} | **total** | {mib(total_peak)} | {mib(total_mean)} | | "
                f"{total_cpu:.2f} | {cpu_k} | {delivered} | | |"
            )
    print("\nSink Prometheus of each run (same config; for reference, not part of the contenders):\n")
    print("| run | peak RSS MiB | CPU s |")
    print("| --- | ---: | ---: |")
    for run in runs:
        s = run["sampled"]["procs"].get("sink", {})
        if "cpu_s" in s:
            print(f"| {run['contender']} | {mib(s['peak_rss_kib'])} | {s['cpu_s']:.2f} |")
    print("\nOther counters over the window (1-minute load average at start → end):\n")
    for run in runs:
        extra = ", ".join(f"{k} = {v if v is None else int(v)}" for k, v in run["sampled"]["counters"].items())
        load = " → ".join(run["sampled"].get("loadavg", []))
        print(f"- {run['contender']}: {extra}; load {load}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        serve(int(args[0]), int(args[1]))
    elif cmd == "port":
        free_port()
    elif cmd == "wait":
        wait(args[0], float(args[1]))
    elif cmd == "sample":
        sample(args[0], float(args[1]), args[2:])
    elif cmd == "count":
        count(args[0], args[1], args[2], args[3])
    elif cmd == "report":
        report(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
