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

    Every contender stamps all samples of one scrape with that scrape's start time (Prometheus and
    vmagent with honor_timestamps: false, slo-gateway by default), so a scrape is identified by
    its timestamp T. The markers are the last family of every /federate body (sbs_workload) and
    hash to different shards. Every `poll` seconds this asks the sink for the raw samples of all
    markers over the last `lookback` seconds; a scrape time T present in every marker means the
    whole scrape T is queryable. The first poll that sees T complete gives its freshness: the time
    that query was sent minus T (the previous poll, at most `poll` earlier, had not seen it).
    Scrapes with T in [t_from, t_to] count; polling goes on after t_to until `finish`, so a slow
    last scrape of the window is still timed rather than left out.
    """

    def __init__(self, prom, marker, markers, t_from, lookback, poll=0.1):
        super().__init__(daemon=True)
        self.prom, self.marker, self.markers, self.poll = prom, marker, markers, poll
        self.t_from, self.t_to, self.lookback = t_from, float("inf"), lookback
        self.delays = {}  # scrape time -> seconds until the whole scrape was queryable
        self.errors = 0
        self._halt = threading.Event()

    def complete_scrapes(self):
        expr = f"{self.marker}[{int(self.lookback)}s]"
        resp = json.loads(get(f"{self.prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=5))
        series = resp["data"]["result"] if resp.get("status") == "success" else []
        if len(series) < self.markers:
            return set()
        times = [{round(float(t), 3) for t, _ in s["values"]} for s in series]
        return set.intersection(*times)

    def run(self):
        while not self._halt.is_set():
            t_query = time.time()
            try:
                complete = self.complete_scrapes()
            except Exception:  # noqa: BLE001
                self.errors += 1
                complete = set()
            for t in complete:
                if self.t_from <= t <= self.t_to and t not in self.delays:
                    self.delays[t] = t_query - t
            self._halt.wait(max(0.0, self.poll - (time.time() - t_query)))

    def finish(self):
        """Stops after one more poll; returns the delays of the scrapes in [t_from, t_to]."""
        time.sleep(2 * self.poll)
        self._halt.set()
        self.join(10)
        return {"delays": sorted(self.delays.items()), "query_errors": self.errors, "poll_s": self.poll}


def sample(procs, counters, seconds, freshness=None):
    """Samples VmRSS of `procs` ({name: pid}) every second for `seconds`, their CPU and the
    `counters` ({name: (url, spec)}) at start and end. Returns the result as a dict. `freshness`
    is started with the window and told its end; the caller finishes it."""
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
        freshness.t_to = t1
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
