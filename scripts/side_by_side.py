#!/usr/bin/env python3
"""Side-by-side run: the slo-gateway agent against vmagent and Prometheus 2.42 agent mode.

Every contender does the same job: federate one real source Prometheus (the stand-in for a seed's
prometheus-aggregate, holding Gardener-shaped `shoot:*` series, see sbs_workload.py) with the
same match[] selectors every INTERVAL, and remote-write what it scrapes into a real sink
Prometheus 2.42. All processes are real and listen on 127.0.0.1 only.

    target (sbs_workload) <- source Prometheus <- /federate -+- prometheus --enable-feature=agent -> proxy -> sink
                                                            +- vmagent                          -> proxy -> sink
                                                            +- slo-gateway agent -> proxy -mTLS-> receiver -> sink

The contenders run one after the other (never at the same time: the machine has few cores), each
with a fresh sink; per point (series count) the target and the source are started afresh. See
BENCHMARKS.md ("Side-by-side") for what every figure means.

  side_by_side.py run [options]      the whole run; prints the table, writes OUT/report.md
  side_by_side.py report RESULTS     the table again from OUT/results.jsonl
  side_by_side.py serve PORT SERIES  (internal) the metrics target
  side_by_side.py proxy LISTEN UPSTREAM ADMIN   (internal) the byte-counting TCP proxy

Standard library only. Every process it starts is stopped at the end, on failure, on Ctrl-C and
on SIGTERM/SIGHUP; if this process is killed outright, the kernel sends its children SIGTERM
(PR_SET_PDEATHSIG). Temporary data (TSDBs, WALs, queues) lives in one temporary directory that is
removed at exit; configs, logs, results.jsonl and report.md stay in OUT.
"""

import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sbs_probe as probe  # noqa: E402
import sbs_report as report  # noqa: E402
import sbs_workload as workload  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SELF = Path(__file__).resolve()
# The agent's default selectors (config/agent.yaml): `shoot:*` rules and ALERTS are what
# prometheus-aggregate holds; the others match nothing here and cost the source nothing.
SELECTORS = [
    '{__name__=~"shoot:.+"}',
    "ALERTS",
    "apiserver_request_total",
    "apiserver_request_terminations_total",
    'probe_success{job="blackbox-apiserver"}',
]
# The federate job's own up/scrape_* series of Prometheus and vmagent: the slo-gateway agent sends
# no such series.
DROP_OWN_SERIES = "{source_labels: [job], regex: federate, action: drop}"
# Every generated series and nothing else (the contenders' own up/scrape_* series are dropped).
COUNT_SELECTOR = '{cluster=~"shoot--.+"}'
CONTENDERS = {
    "prometheus-agent": "Prometheus 2.42 agent mode",
    "prometheus-agent-2000": "Prometheus agent, 2000/request",
    "vmagent": "vmagent",
    "slo-gateway": "slo-gateway",
    "slo-gateway-v1": "slo-gateway (RW 1.0)",
    "slo-gateway-v2": "slo-gateway (RW 2.0)",
}


class Interrupted(Exception):
    pass


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """Runs in the child before exec: SIGTERM when the harness dies, even by SIGKILL."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def proxy_counters(metrics_url):
    """The wire figures: what the proxy in front of the contender's receiver forwarded."""
    return {
        "wire_bytes": (metrics_url, 'sbs_proxy_bytes_total{direction="upstream"}'),
        "wire_bytes_down": (metrics_url, 'sbs_proxy_bytes_total{direction="downstream"}'),
        "wire_connections": (metrics_url, "sbs_proxy_connections_total"),
    }


def yaml_list(items):
    return "[" + ", ".join("'" + i.replace("'", "''") + "'" for i in items) + "]"


class Processes:
    """Every process the run starts; `stop_all` ends them (TERM, then KILL after 15 s)."""

    def __init__(self, logs):
        self.logs = logs
        self.running = []

    def start(self, name, argv, env=None):
        path = self.logs / f"{name}.log"
        with open(path, "ab") as out:
            p = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,  # Ctrl-C reaches the harness only; it stops them in order
                preexec_fn=die_with_parent,
            )
        p.name, p.log = name, path
        self.running.append(p)
        return p

    def stop(self, *procs, grace=15.0):
        procs = [p for p in procs if p is not None]
        for p in procs:
            if p.poll() is None:
                try:
                    p.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.time() + grace
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p in self.running:
                self.running.remove(p)

    def stop_all(self):
        self.stop(*reversed(self.running))


def log_tail(p, lines=15):
    try:
        return "\n".join(p.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until(what, check, timeout, procs=()):
    """Polls check() (truthy = done) until timeout; fails early when one of procs exited."""
    deadline = time.time() + timeout
    while True:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.name} exited ({p.returncode}) while waiting for {what}:\n{log_tail(p)}")
        try:
            result = check()
            if result:
                return result
        except Exception:  # noqa: BLE001
            pass
        if time.time() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def http_ok(url):
    return lambda: probe.get(url, timeout=3) is not None


def tcp_open(port):
    def check():
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    return check


ANSI = re.compile(r"\x1b\[[0-9;]*m")
WARN_LINE = re.compile(r"\b(WARN|ERROR)\b|level=(warn|error)|\t(warn|error)\t")


def log_issues(path):
    """Warning/error lines a process has logged so far (shutdown lines excluded)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return {"count": 0, "first": []}
    text = ANSI.sub("", text)  # the slo-gateway logs carry colour codes even into a file
    lines = [line for line in text.splitlines() if WARN_LINE.search(line) and "SIGTERM" not in line]
    return {"count": len(lines), "first": [line[:300] for line in lines[:3]]}


class Run:
    def __init__(self, args):
        self.a = args
        self.out = Path(args.out).resolve()
        if self.out.exists():
            shutil.rmtree(self.out)
        (self.out / "logs").mkdir(parents=True)
        (self.out / "configs").mkdir()
        self.data = Path(tempfile.mkdtemp(prefix="side-by-side."))
        # The sink, WAL, queue of the contender being measured: removed after each contender.
        self.contender_data = self.data / "contender"
        self.procs = Processes(self.out / "logs")
        self.results = self.out / "results.jsonl"
        self.results.touch()

    # ------------------------------------------------------------ building blocks
    def config(self, name, text):
        path = self.out / "configs" / name
        path.write_text(text)
        return path

    def start_prometheus(self, name, config_text, storage, *flags):
        """A server Prometheus (the source or a sink) with its TSDB in `storage`."""
        port = free_port()
        cfg = self.config(f"{name}.yml", config_text)
        storage.mkdir(parents=True, exist_ok=True)
        argv = [
            self.a.prometheus,
            f"--config.file={cfg}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={storage}",
            "--log.level=warn",
        ]
        p = self.procs.start(name, argv + list(flags))
        wait_until(f"{name} ready", http_ok(f"http://127.0.0.1:{port}/-/ready"), 120, [p])
        return p, port

    def start_sink(self, name):
        return self.start_prometheus(
            name,
            "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 2h\n",
            self.contender_data / "sink",
            "--web.enable-remote-write-receiver",
        )

    def start_proxy(self, name, upstream_port):
        listen, admin = free_port(), free_port()
        p = self.procs.start(name, [sys.executable, SELF, "proxy", listen, upstream_port, admin])
        wait_until(name, tcp_open(admin), 30, [p])
        return p, listen, f"http://127.0.0.1:{admin}/metrics"

    # ------------------------------------------------------------ contenders
    def federate_config(self, source):
        """The scrape side of Prometheus and vmagent: the same job as the slo-gateway agent's."""
        return f"""global:
  scrape_interval: {self.a.interval}s
  scrape_timeout: {self.timeout()}s
  external_labels: {{seed: bench}}
scrape_configs:
  - job_name: federate
    honor_labels: true
    # Like the slo-gateway agent's default (scrape.honor_timestamps: false): scrape time.
    honor_timestamps: false
    metrics_path: /federate
    params:
      'match[]': {yaml_list(SELECTORS)}
    static_configs:
      - targets: ['{source}']
"""

    def contender_prometheus(self, tag, source, proxy_port):
        per_request = 2000 if tag.endswith("-2000") else None
        port = free_port()
        queue = f"    queue_config: {{max_samples_per_send: {per_request}}}\n" if per_request else ""
        config = (
            self.federate_config(source)
            + f"""remote_write:
  - url: http://127.0.0.1:{proxy_port}/api/v1/write
    write_relabel_configs:
      - {DROP_OWN_SERIES}
{queue}"""
        )
        cfg = self.config(f"{self.tag}-{tag}.yml", config)
        storage = self.contender_data / tag
        p = self.procs.start(
            f"{self.tag}-{tag}",
            [
                self.a.prometheus,
                "--enable-feature=agent",
                f"--config.file={cfg}",
                f"--storage.agent.path={storage}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            ],
        )
        wait_until(tag, http_ok(f"http://127.0.0.1:{port}/-/ready"), 60, [p])
        m = f"http://127.0.0.1:{port}/metrics"
        counters = {
            "payload_bytes": (m, "prometheus_remote_storage_bytes_total"),
            "metadata_bytes": (m, "prometheus_remote_storage_metadata_bytes_total"),
            "samples_sent": (m, "prometheus_remote_storage_samples_total"),
            "samples_failed": (m, "prometheus_remote_storage_samples_failed_total"),
            "samples_retried": (m, "prometheus_remote_storage_samples_retried_total"),
            "samples_scraped": (m, "prometheus_agent_samples_appended_total"),
        }
        return {"sender": p}, counters

    def contender_vmagent(self, source, proxy_port):
        port = free_port()
        cfg = self.config(f"{self.tag}-vmagent.yml", self.federate_config(source))
        relabel = self.config(f"{self.tag}-vmagent-relabel.yml", f"- {DROP_OWN_SERIES}\n")
        argv = [
            self.a.vmagent,
            f"-httpListenAddr=127.0.0.1:{port}",
            f"-promscrape.config={cfg}",
            # The default (16 MB) refuses the /federate body at 360k series (~140 MB).
            "-promscrape.maxScrapeSize=1GiB",
            f"-remoteWrite.url=http://127.0.0.1:{proxy_port}/api/v1/write",
            f"-remoteWrite.urlRelabelConfig={relabel}",
            f"-remoteWrite.tmpDataPath={self.contender_data / 'vmagent'}",
            "-loggerLevel=INFO",
        ] + list(self.a.vmagent_flag)
        p = self.procs.start(f"{self.tag}-vmagent", argv)
        wait_until("vmagent", http_ok(f"http://127.0.0.1:{port}/health"), 60, [p])
        m = f"http://127.0.0.1:{port}/metrics"
        counters = {
            "payload_bytes": (m, "vmagent_remotewrite_bytes_sent_total"),
            "requests": (m, "vmagent_remotewrite_requests_total"),
            "retries": (m, "vmagent_remotewrite_retries_count_total"),
            "samples_scraped": (m, "vm_promscrape_scraped_samples_sum"),
            "scrapes_failed": (m, "vm_promscrape_scrapes_failed_total"),
        }
        return {"sender": p}, counters

    def contender_slo_gateway(self, tag, source, sink_port):
        # slo-gateway-v1 / -v2: remote_write.protocol v1 / v2; plain slo-gateway keeps the agent's default.
        protocol = tag.rsplit("-", 1)[1] if tag in ("slo-gateway-v1", "slo-gateway-v2") else None
        certs = self.data / "certs"
        if not certs.exists():
            subprocess.run([self.a.bin, "certs", "--out", certs, "--seeds", "bench"], check=True, capture_output=True)
        rx, admin_rx, admin_agent = free_port(), free_port(), free_port()
        # The one bench seed has every series of the point: above the receiver's default
        # max_series_per_seed (100,000) it would refuse most of them, so the limit follows the point.
        rx_cfg = self.config(
            f"{self.tag}-receiver.yaml",
            f"""listen: 127.0.0.1:{rx}
admin_listen: 127.0.0.1:{admin_rx}
tls: {{cert_file: {certs}/server.pem, key_file: {certs}/server-key.pem, client_ca_file: {certs}/ca.pem}}
identity: {{label: seed}}
forward: {{url: 'http://127.0.0.1:{sink_port}/api/v1/write'}}
limits: {{max_series_per_seed: {max(100_000, 2 * self.series)}}}
""",
        )
        proxy, proxy_port, proxy_metrics = self.start_proxy(f"{self.tag}-{tag}-proxy", rx)
        protocol_line = f"  protocol: {protocol}\n" if protocol else ""
        agent_cfg = self.config(
            f"{self.tag}-{tag}-agent.yaml",
            f"""listen: 127.0.0.1:{admin_agent}
scrape:
  interval: {self.a.interval}s
  timeout: {self.timeout()}s
  targets:
    - url: http://{source}/federate
      match: {yaml_list(SELECTORS)}
remote_write:
  url: https://127.0.0.1:{proxy_port}/api/v1/write
{protocol_line}  tls:
    ca_file: {certs}/ca.pem
    cert_file: {certs}/seed-bench.pem
    key_file: {certs}/seed-bench-key.pem
buffer:
  path: {self.contender_data / "agent-buffer"}
""",
        )
        for cfg in (rx_cfg, agent_cfg):
            check = subprocess.run([self.a.bin, "check-config", cfg], capture_output=True, text=True)
            if check.returncode != 0:
                raise RuntimeError(f"check-config {cfg}: {check.stdout}{check.stderr}")
        env = {"RUST_LOG": os.environ.get("RUST_LOG", "info")}
        receiver = self.procs.start(f"{self.tag}-{tag}-receiver", [self.a.bin, "receiver", "--config", rx_cfg], env)
        wait_until("receiver", http_ok(f"http://127.0.0.1:{admin_rx}/readyz"), 30, [receiver])
        agent = self.procs.start(f"{self.tag}-{tag}-agent", [self.a.agent_bin, "agent", "--config", agent_cfg], env)
        wait_until("agent", http_ok(f"http://127.0.0.1:{admin_agent}/healthz"), 30, [agent])
        am, rm = f"http://127.0.0.1:{admin_agent}/metrics", f"http://127.0.0.1:{admin_rx}/metrics"
        counters = {
            **proxy_counters(proxy_metrics),
            "payload_bytes": (am, "slo_gateway_agent_bytes_sent_total"),
            "samples_sent": (am, "slo_gateway_agent_samples_sent_total"),
            "samples_scraped": (am, "slo_gateway_agent_samples_scraped_total"),
            "samples_dropped": (am, "slo_gateway_agent_samples_dropped_total"),
            "scrape_overruns": (am, "slo_gateway_agent_scrape_overruns_total"),
            "receiver_accepted": (rm, "slo_gateway_receiver_samples_accepted_total"),
            "receiver_rejected": (rm, "slo_gateway_receiver_samples_rejected_total"),
        }
        return {"sender": agent, "receiver": receiver, "proxy": proxy}, counters

    # ------------------------------------------------------------ one contender at one point
    def timeout(self):
        return max(1, self.a.interval - 1)

    def run_contender(self, tag, series, source):
        log(f"{series} series, {tag}: starting")
        sink, sink_port = self.start_sink(f"{self.tag}-{tag}-sink")
        procs = {}
        try:
            if tag.startswith("slo-gateway"):
                procs, counters = self.contender_slo_gateway(tag, source, sink_port)
            else:
                proxy, proxy_port, proxy_metrics = self.start_proxy(f"{self.tag}-{tag}-proxy", sink_port)
                procs["proxy"] = proxy
                if tag == "vmagent":
                    started, counters = self.contender_vmagent(source, proxy_port)
                else:
                    started, counters = self.contender_prometheus(tag, source, proxy_port)
                procs.update(started)
                counters = {**proxy_counters(proxy_metrics), **counters}
            result = self.measure(tag, series, procs, counters, sink_port)
        finally:
            self.procs.stop(*[procs[k] for k in ("sender", "receiver", "proxy") if k in procs], sink)
            shutil.rmtree(self.contender_data, ignore_errors=True)
        return result

    def measure(self, tag, series, procs, counters, sink_port):
        a = self.a
        sink = f"http://127.0.0.1:{sink_port}"
        expected = series * a.duration // a.interval
        log(f"{series} series, {tag}: warm-up {a.warmup}s")
        self.sleep(a.warmup, procs)
        markers = workload.marker_count(series)
        # Back to the window's start even while polling during the drain after it.
        lookback = a.duration + 4 * a.interval
        fresh = probe.Freshness(sink, workload.MARKER, markers, t_from=time.time(), lookback=lookback)
        log(f"{series} series, {tag}: measuring {a.duration}s")
        pids = {k: p.pid for k, p in procs.items() if k != "proxy"}
        sampled = probe.sample(pids, counters, a.duration, freshness=fresh)
        issues = {k: log_issues(p.log) for k, p in procs.items() if k != "proxy"}
        delivered = self.drain(sink, sampled["t1"], expected)
        sampled["freshness"] = fresh.finish()
        exited = [k for k, p in procs.items() if p.poll() is not None]
        log(
            f"{series} series, {tag}: {delivered} of {expected} samples delivered; "
            f"{len(sampled['freshness']['delays'])} scrapes timed for freshness"
            + (f"; EXITED: {exited}" if exited else "")
        )
        return {
            "series": series,
            "contender": tag,
            "label": CONTENDERS[tag],
            "interval": a.interval,
            "warmup": a.warmup,
            "duration": a.duration,
            "expected": expected,
            "delivered": delivered,
            "markers": markers,
            "exited": exited,
            "log_issues": issues,
            **sampled,
        }

    def drain(self, sink, t1, expected):
        """Samples with a timestamp in the window that the sink holds once delivery has settled: at
        least one interval after the window, until the count reaches `expected` or stops moving,
        at most three intervals."""
        a = self.a
        deadline = t1 + 3 * a.interval
        previous = None
        while True:
            count = probe.count_samples(sink, COUNT_SELECTOR, t1, a.duration)
            now = time.time()
            if count >= expected or now > deadline:
                return count
            if previous == count and now >= t1 + a.interval:
                return count
            previous = count
            time.sleep(2)

    def sleep(self, seconds, procs):
        end = time.time() + seconds
        while time.time() < end:
            for p in procs.values():
                if p.poll() is not None:
                    raise RuntimeError(f"{p.name} exited ({p.returncode}) during warm-up:\n{log_tail(p)}")
            time.sleep(min(1.0, max(0.0, end - time.time())))

    # ------------------------------------------------------------ one point
    def run_point(self, series):
        a = self.a
        self.tag = f"s{series}"
        self.series = series
        target_port = free_port()
        target = self.procs.start(f"{self.tag}-target", [sys.executable, SELF, "serve", target_port, series])
        wait_until("target", tcp_open(target_port), 300, [target])
        source_data = self.data / f"{self.tag}-source"
        source, source_port = self.start_prometheus(
            f"{self.tag}-source",
            f"""global:
  scrape_interval: {a.source_interval}s
  scrape_timeout: {max(1, a.source_interval - 1)}s
scrape_configs:
  - job_name: aggregate
    honor_labels: true
    static_configs:
      - targets: ['127.0.0.1:{target_port}']
""",
            source_data,
        )
        src = f"http://127.0.0.1:{source_port}"

        def scraped_all():
            res = probe.query(src, 'scrape_samples_scraped{job="aggregate"}', timeout=10)
            return res and int(res[0][1]) == series

        log(f"{series} series: source Prometheus on 127.0.0.1:{source_port}; waiting for a full scrape")
        wait_until("the source's first full scrape", scraped_all, 4 * a.source_interval + 120, [target, source])
        try:
            federate = self.time_federate(src, source.pid)
            log(
                f"{series} series: one /federate of the source alone takes {federate['plain_s']:.1f} s plain "
                f"({federate['plain_cpu_s']:.1f} CPU-s of the source), {federate['gzip_s']:.1f} s with gzip "
                f"({federate['bytes'] / 1e6:.1f} MB)"
            )
            if federate["plain_s"] > self.timeout() and not a.run_slow_points:
                reason = (
                    f"the source Prometheus alone needs {federate['plain_s']:.1f} s for one /federate, more than the "
                    f"{self.timeout()} s scrape timeout: no contender could scrape it on this machine now"
                )
                log(f"{series} series: SKIPPED, {reason} (--run-slow-points runs it anyway)")
                self.write_result({"series": series, "skipped": reason, "source_federate": federate})
                return
            for tag in a.contenders:
                result = self.run_contender(tag, series, f"127.0.0.1:{source_port}")
                self.write_result({**result, "source_federate": federate})
        finally:
            self.procs.stop(source, target)
            shutil.rmtree(source_data, ignore_errors=True)

    def time_federate(self, src, source_pid):
        """How long the source alone takes for the contenders' /federate request, plain and gzip:
        the floor under every contender's scrape, and whether the point fits the timeout at all.
        The source's CPU seconds for the plain request (its own scrape may overlap) do not depend
        on how loaded the machine is."""
        params = urllib.parse.urlencode([("match[]", m) for m in SELECTORS])
        times = {}
        for encoding in ("identity", "gzip"):
            request = urllib.request.Request(f"{src}/federate?{params}", headers={"Accept-Encoding": encoding})
            cpu0, started = probe.proc(source_pid)[2], time.time()
            with urllib.request.urlopen(request, timeout=20 * self.a.interval) as response:
                body = response.read()
            key = "plain" if encoding == "identity" else "gzip"
            times[f"{key}_s"], times[f"{key}_cpu_s"] = time.time() - started, probe.proc(source_pid)[2] - cpu0
            if encoding == "identity":
                times["bytes"] = len(body)
        return times

    def write_result(self, result):
        with open(self.results, "a") as f:
            f.write(json.dumps(result) + "\n")

    def run(self):
        a = self.a
        meta = {
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "versions": versions(a),
            "settings": {
                "points": a.points,
                "interval": a.interval,
                "source_interval": a.source_interval,
                "warmup": a.warmup,
                "duration": a.duration,
                "contenders": a.contenders,
                "quick": a.quick,
                "vmagent_flags": a.vmagent_flag,
            },
            "note": a.note,
            "loadavg_start": open("/proc/loadavg").read().split()[:3],
        }
        log(f"{meta['machine']}; {'; '.join(meta['versions'].values())}")
        log(
            f"points {a.points}, every {a.interval}s, warm-up {a.warmup}s, measured {a.duration}s; output in {self.out}"
        )
        for series in a.points:
            self.run_point(series)
        meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        (self.out / "meta.json").write_text(json.dumps(meta, indent=1))
        text = report.render(meta, report.load(self.results))
        (self.out / "report.md").write_text(text)
        print(text)

    def cleanup(self):
        self.procs.stop_all()
        shutil.rmtree(self.data, ignore_errors=True)


def machine():
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        mem = f"{int(mem) / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    return f"{os.cpu_count()} × {model or platform.processor()}, {mem} RAM, Linux {platform.release()}"


def versions(a):
    def first_line(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    commit = first_line(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
    return {
        "slo-gateway": f"{first_line([a.bin, '--version'])} ({commit})",
        "prometheus": first_line([a.prometheus, "--version"]),
        # The Debian build prints an empty -version: fall back to the package's version.
        "vmagent": first_line([a.vmagent, "-version"]).replace("?", "")
        or "vmagent, Debian victoria-metrics " + first_line(["dpkg-query", "-W", "-f=${Version}", "victoria-metrics"]),
    }


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/side-by-side.sh", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="check the harness: 100 and 2,000 series, every 5 s, 10 s warm-up, 20 s measured (about 5 min)",
    )
    p.add_argument("--points", help="series counts, comma-separated (default 100,36000,360000; quick 100,2000)")
    p.add_argument(
        "--interval", type=int, help="scrape interval of the source and of every contender, s (default 15; quick 5)"
    )
    p.add_argument(
        "--source-interval",
        type=int,
        help="how often the source Prometheus scrapes the workload, s (default: --interval); a longer one takes load "
        "off the machine when the source is the bottleneck, values then change less often",
    )
    p.add_argument(
        "--warmup", type=int, help="seconds from a contender's start to its measured window (default 30; quick 10)"
    )
    p.add_argument("--duration", type=int, help="measured window, s; a multiple of --interval (default 120; quick 20)")
    p.add_argument(
        "--contenders",
        default="prometheus-agent,vmagent,slo-gateway",
        help="in this order, comma-separated, of: "
        + ", ".join(CONTENDERS)
        + " (slo-gateway-v1/-v2 set the agent's remote_write.protocol, which needs a build that has it)",
    )
    p.add_argument(
        "--out",
        default=os.path.join(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")), "side-by-side"),
        help="output directory, replaced (default target/side-by-side)",
    )
    p.add_argument(
        "--bin",
        default=os.environ.get("SLO_GATEWAY_BIN"),
        help="slo-gateway binary, runs the receiver (default target/release/slo-gateway)",
    )
    p.add_argument(
        "--agent-bin",
        default=os.environ.get("SLO_GATEWAY_AGENT_BIN"),
        help="the lean seed agent binary (default target/agent/slo-gateway-agent: cargo build --profile agent -p slo-gateway-agent)",
    )
    p.add_argument("--prometheus", default=os.environ.get("PROMETHEUS", "prometheus"))
    p.add_argument("--vmagent", default=os.environ.get("VMAGENT", "vmagent"))
    p.add_argument(
        "--vmagent-flag",
        action="append",
        default=[],
        help="extra vmagent flag, repeatable (e.g. -promscrape.streamParse)",
    )
    p.add_argument(
        "--run-slow-points",
        action="store_true",
        help="measure a point even when the source alone needs longer than the scrape timeout for /federate",
    )
    p.add_argument("--note", default="", help="a line printed above the table (e.g. 'taken on a loaded machine')")
    a = p.parse_args(argv)
    quick = {"points": "100,2000", "interval": 5, "warmup": 10, "duration": 20}
    full = {"points": "100,36000,360000", "interval": 15, "warmup": 30, "duration": 120}
    for k, v in (quick if a.quick else full).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.source_interval is None:
        a.source_interval = a.interval
    a.points = [int(x.replace("_", "")) for x in str(a.points).split(",") if x.strip()]
    a.contenders = [c.strip() for c in a.contenders.split(",") if c.strip()]
    for c in a.contenders:
        if c not in CONTENDERS:
            p.error(f"unknown contender {c}")
    if a.duration % a.interval:
        p.error("--duration must be a multiple of --interval (equal numbers of scrapes in every window)")
    if a.bin is None:
        a.bin = str(Path(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))) / "release" / "slo-gateway")
    a.bin = str(Path(a.bin).resolve())
    if a.agent_bin is None:
        a.agent_bin = str(Path(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))) / "agent" / "slo-gateway-agent")
    a.agent_bin = str(Path(a.agent_bin).resolve())
    if any(c.startswith("slo-gateway") for c in a.contenders) and not os.access(a.bin, os.X_OK):
        p.error(f"no slo-gateway binary at {a.bin} (cargo build --release --locked, or --bin)")
    if any(c.startswith("slo-gateway") for c in a.contenders) and not os.access(a.agent_bin, os.X_OK):
        p.error(f"no slo-gateway-agent binary at {a.agent_bin} (cargo build --profile agent --locked -p slo-gateway-agent, or --agent-bin)")
    for tool, c in ((a.prometheus, "prometheus"), (a.vmagent, "vmagent")):
        if any(x.startswith(c) for x in a.contenders) or c == "prometheus":
            if shutil.which(tool) is None:
                package = "prometheus" if c == "prometheus" else "victoria-metrics"
                p.error(f"{tool} not found (Debian: apt-get install {package})")
    if any(c in ("slo-gateway-v1", "slo-gateway-v2") for c in a.contenders):
        agent_yaml = (ROOT / "config" / "agent.yaml").read_text()
        if not re.search(r"^\s+protocol:", agent_yaml, re.M):
            p.error("this slo-gateway has no remote_write.protocol (config/agent.yaml): use the contender slo-gateway")
    return a


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        workload.serve(int(rest[0]), int(rest[1]))
    elif cmd == "proxy":
        import sbs_proxy

        sbs_proxy.main(int(rest[0]), int(rest[1]), int(rest[2]))
    elif cmd == "report":
        results = Path(rest[0])
        meta_path = results.parent / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        print(report.render(meta, report.load(results)))
    elif cmd == "run":
        args = parse_args(rest)
        run = Run(args)
        # SIGINT too: a shell that starts this in the background leaves SIGINT ignored.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, on_signal)
        code = 0
        try:
            run.run()
        except (KeyboardInterrupt, Interrupted) as e:
            log(f"interrupted ({e}); stopping everything")
            code = 130
        except Exception as e:  # noqa: BLE001
            log(f"failed: {e}")
            code = 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
            run.cleanup()
            if code:
                log(f"logs and partial results in {run.out}")
        sys.exit(code)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
