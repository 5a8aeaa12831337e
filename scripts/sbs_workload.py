"""The metrics target of the side-by-side run: Gardener-shaped series, as prometheus-aggregate holds them.

In a Gardener seed, every shoot control plane (namespace `shoot--<project>--<name>`) has its own
Prometheus that computes `shoot:*` recording rules; prometheus-aggregate federates them with
`honor_labels: true`, so each series keeps the shoot Prometheus' external labels (`cluster`,
`project`, `shoot_name`, `name`, `seed_api`, `seed_region`, `seed_provider`, `shoot_infra`,
`ignoreAlerts`; Gardener's botanist `DefaultPrometheus`) next to its own labels. The target serves
exactly that: the source Prometheus of the run scrapes it with `honor_labels: true` and so becomes
the stand-in for prometheus-aggregate, whose `/federate` every contender scrapes.

Per shoot, 20 series (the recording rules of Gardener's shoot Prometheus rule files):
  shoot:availability{kind=seed|shoot|vpn, job, instance}                           3
  shoot:apiserver_latency:percentage                                              1
  shoot:kube_node_info:count, shoot:kube_node_status_capacity_{cpu_cores,memory_bytes}:sum   3
  shoot:machine_types:sum{machine_type}, shoot:node_operating_system:sum{os_image,kernel_version} 2
  shoot:apiserver_storage_objects:sum_by_resource{resource}                       9
  shoot:apiserver_watch_duration:quantile{quantile,scope,resource}                2

Plus freshness markers `shoot:zz_freshness:marker` (one per 100 series, at most 16, each in its
own cluster so the contenders hash them to different shards). Prometheus' /federate sorts its
output by metric name only, so the markers are the last family of every /federate body: a marker
being queryable in the sink means the whole scrape got through (see sbs_probe.Freshness).
"""

import random
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SEED = "bench"
MARKER = "shoot:zz_freshness:marker"
PER_SHOOT = 20
RESOURCES = (
    "pods",
    "secrets",
    "configmaps",
    "events.events.k8s.io",
    "leases.coordination.k8s.io",
    "replicasets.apps",
    "deployments.apps",
    "services",
    "endpointslices.discovery.k8s.io",
)
MACHINE_TYPES = ("m5.large", "m5.xlarge", "m6i.2xlarge", "c5.4xlarge")


def marker_count(series):
    return min(16, max(1, series // 100))


def external_labels(project, shoot):
    return (
        f'cluster="shoot--{project}--{shoot}",ignoreAlerts="false",name="{shoot}",project="{project}",'
        f'seed="{SEED}",seed_api="https://api.{SEED}.eu-west-1.aws.seed.example.com",seed_provider="aws",'
        f'seed_region="eu-west-1",shoot_infra="aws",shoot_name="{shoot}"'
    )


def shoot_series(i):
    """(line prefix up to the value, value kind) of the 20 series of shoot number i."""
    project, shoot = f"project{i % 97}", f"cluster{i}"
    ext = external_labels(project, shoot)
    out = []
    for kind, job, instance in (
        ("seed", "blackbox-apiserver", f"api.{shoot}.{project}.shoot.example.com:443"),
        ("shoot", "blackbox-exporter-k8s-service-check", "https://kubernetes.default.svc.cluster.local/healthz"),
        ("vpn", "tunnel-probe-apiserver-proxy", f"https://kube-apiserver.shoot--{project}--{shoot}/healthz"),
    ):
        out.append((f'shoot:availability{{{ext},instance="{instance}",job="{job}",kind="{kind}"}} ', "bool"))
    out.append((f"shoot:apiserver_latency:percentage{{{ext}}} ", "ratio"))
    out.append((f"shoot:kube_node_info:count{{{ext}}} ", "nodes"))
    out.append((f"shoot:kube_node_status_capacity_cpu_cores:sum{{{ext}}} ", "cores"))
    out.append((f"shoot:kube_node_status_capacity_memory_bytes:sum{{{ext}}} ", "bytes"))
    out.append((f'shoot:machine_types:sum{{{ext},machine_type="{MACHINE_TYPES[i % len(MACHINE_TYPES)]}"}} ', "nodes"))
    out.append(
        (
            f'shoot:node_operating_system:sum{{{ext},kernel_version="6.6.{40 + i % 5}-cloud-amd64",'
            f'os_image="Garden Linux 1592.{i % 4}"}} ',
            "nodes",
        )
    )
    for r in RESOURCES:
        out.append((f'shoot:apiserver_storage_objects:sum_by_resource{{{ext},resource="{r}"}} ', "objects"))
    for r in ("pods", "nodes"):
        out.append(
            (
                f'shoot:apiserver_watch_duration:quantile{{{ext},quantile="0.2",resource="{r}",scope="cluster"}} ',
                "seconds",
            )
        )
    return out


def build(series):
    """Exactly `series` (prefix, kind) pairs: whole shoots, the last one cut short, then the markers."""
    markers = marker_count(series)
    wanted = max(0, series - markers)
    out = []
    i = 0
    while len(out) < wanted:
        out.extend(shoot_series(i))
        i += 1
    del out[wanted:]
    for m in range(markers):
        out.append((f"{MARKER}{{{external_labels('bench', f'marker{m}')}}} ", "now"))
    return out


class Body:
    """Renders the exposition; values move on every render the way the real rules' values do.

    Most of these series are counts that rarely change, so the rendered lines are kept and only the
    lines whose value changed are rebuilt: at 360k series a full render would cost the machine
    several CPU seconds per scrape that the contenders then lack.
    """

    def __init__(self, series):
        self.series = build(series)
        self.rng = random.Random(42)
        self.values = [self.initial(kind) for _, kind in self.series]
        self.prefixes = [prefix.encode() for prefix, _ in self.series]
        self.lines = [p + str(v).encode() for p, v in zip(self.prefixes, self.values, strict=True)]
        self.lines.append(b"")  # the body ends with a newline
        by_kind = {}
        for n, (_, kind) in enumerate(self.series):
            by_kind.setdefault(kind, []).append(n)
        self.by_kind = by_kind

    def initial(self, kind):
        r = self.rng
        return {
            "bool": "1",
            "ratio": 0.0,
            "nodes": r.randint(3, 40),
            "cores": r.randint(3, 40) * 4,
            "bytes": r.randint(3, 40) * 16 * 2**30,
            "objects": r.randint(10, 5000),
            "seconds": 0.0,
            "now": 0.0,
        }[kind]

    def set(self, n, value):
        self.values[n] = value
        self.lines[n] = self.prefixes[n] + value.encode()

    def render(self):
        r = self.rng.random
        k = self.by_kind
        for n in k.get("ratio", ()):
            self.set(n, f"{r() * 0.02:.6f}")
        for n in k.get("seconds", ()):
            self.set(n, f"{0.05 + r() * 0.4:.4f}")
        for n in k.get("bool", ()):
            v = "0" if r() < 0.002 else "1"
            if v != self.values[n]:
                self.set(n, v)
        for n in k.get("objects", ()):
            if r() < 0.2:
                self.set(n, str(int(self.values[n]) + 1))
        now = f"{time.time():.3f}"
        for n in k.get("now", ()):
            self.set(n, now)
        return b"\n".join(self.lines)


def serve(port, series):
    body = Body(series)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            data = body.render()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    sample = body.render()
    print(
        f"serving {len(body.series)} series ({marker_count(series)} freshness markers), "
        f"{len(sample)} bytes per body, on 127.0.0.1:{port}",
        flush=True,
    )
    # One request at a time: only the source Prometheus scrapes this, and it keeps `state` simple.
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
