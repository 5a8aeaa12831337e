"""What the side-by-side run measures: /proc, /metrics counters, the sink Prometheus, freshness."""

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def get(url, timeout=10.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{url}: {e.code} {e.read().decode(errors='replace')[:500]}") from None


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


def parse_selector(spec):
    """'name' or 'name{a="x",b="y"}' -> (name, [('a', 'x'), ...])."""
    name, _, rest = spec.partition("{")
    pairs = []
    for part in rest.rstrip("}").split(","):
        if part:
            k, _, v = part.partition("=")
            pairs.append((k.strip(), v.strip().strip('"')))
    return name, pairs


def counter(url, spec):
    """Sum of the samples matching `spec` (a name, optionally with label equalities) on a /metrics
    page; None if the page is unreachable or has no such sample (the metric may not exist in this
    version of the contender)."""
    try:
        text = get(url)
    except Exception:  # noqa: BLE001
        return None
    name, pairs = parse_selector(spec)
    total, seen = 0.0, False
    for line in text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        if "}" in line:
            labels, _, rest = line.rpartition("}")
        else:
            labels, rest = "", line[len(name) :]
        if any(f'{k}="{v}"' not in labels for k, v in pairs):
            continue
        total += float(rest.split()[0])
        seen = True
    return total if seen else None


def query(prom, expr, at=None, timeout=120.0):
    """Instant query; the result vector as a list of (labels, float)."""
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{float(at):.3f}"
    resp = json.loads(get(f"{prom}/api/v1/query?" + urllib.parse.urlencode(params), timeout=timeout))
    if resp.get("status") != "success":
        raise RuntimeError(f"query {expr}: {resp}")
    return [(r["metric"], float(r["value"][1])) for r in resp["data"]["result"]]


def count_samples(prom, selector, at, range_s):
    """Samples stored with a timestamp in [at - range_s, at] in the series matching `selector`.

    One query per metric name: count_over_time drops the name, and series that differ only by it
    would collide in one result vector."""
    names = json.loads(get(f"{prom}/api/v1/label/__name__/values", timeout=60))["data"]
    inner = selector.strip("{}")
    total = 0
    for name in names:
        expr = f'sum(count_over_time({{__name__="{name}",{inner}}}[{int(range_s)}s]))'
        res = query(prom, expr, at=at)
        total += int(res[0][1]) if res else 0
    return total


class Freshness(threading.Thread):
    """Scrape -> queryable in the sink, once per contender scrape.

    Every contender stamps a scraped sample with its scrape's start time (Prometheus and vmagent
    with honor_timestamps: false, slo-gateway by default), so the newest timestamp of a marker
    series in the sink is the start of the newest scrape that reached it. Every `poll` seconds this
    asks the sink for `timestamp(<marker>)` of all markers; when the oldest of them moves to a new
    scrape time T, every marker of scrape T is queryable, and now - T is that scrape's freshness.
    The markers are the last family of every /federate body (sbs_workload), so this is the time
    until the whole scrape is queryable. Resolution: the poll interval plus one query.
    """

    def __init__(self, prom, marker, markers, t_from, poll=0.1):
        super().__init__(daemon=True)
        self.prom, self.marker, self.markers, self.t_from, self.poll = prom, marker, markers, t_from, poll
        self.stop_at = None
        self.delays = []  # (scrape time, seconds until queryable)
        self.errors = 0
        self._halt = threading.Event()

    def run(self):
        last = None
        while not self._halt.is_set():
            t_query = time.time()
            try:
                res = query(self.prom, f"timestamp({self.marker})", timeout=5)
            except Exception:  # noqa: BLE001
                self.errors += 1
                res = []
            if len(res) == self.markers:
                newest_complete = min(v for _, v in res)
                if last is not None and newest_complete > last and newest_complete >= self.t_from:
                    # The sink answered from data it held at some moment after t_query; the
                    # previous poll (at most `poll` earlier) had not seen it yet.
                    self.delays.append((newest_complete, t_query - newest_complete))
                last = newest_complete if last is None else max(last, newest_complete)
            self._halt.wait(max(0.0, self.poll - (time.time() - t_query)))

    def finish(self):
        self._halt.set()
        self.join(10)
        return {"delays": self.delays, "query_errors": self.errors, "poll_s": self.poll}


def sample(procs, counters, seconds, freshness=None, stop=None):
    """Samples VmRSS of `procs` ({name: pid}) every second for `seconds`, their CPU and the
    `counters` ({name: (url, spec)}) at start and end. Returns the result as a dict."""
    load0 = open("/proc/loadavg").read().split()[0]
    start_counters = {n: counter(u, s) for n, (u, s) in counters.items()}
    t0 = time.time()
    first = {n: proc(p) for n, p in procs.items()}
    rss = {n: [] for n in procs}
    gone = set()
    if freshness is not None:
        freshness.start()
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
    end_counters = {n: counter(u, s) for n, (u, s) in counters.items()}
    load1 = open("/proc/loadavg").read().split()[0]
    result = {"t0": t0, "t1": t1, "loadavg": [load0, load1], "procs": {}, "counters": {}}
    if freshness is not None:
        result["freshness"] = freshness.finish()
    for n in procs:
        if first[n] is None or last[n] is None or not rss[n]:
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
    return result
