"""The side-by-side table: every figure of every contender, with ratios to vmagent and Prometheus agent mode."""

import json

REFERENCES = ("vmagent", "prometheus-agent")
MIB = 1024.0


def load(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def percentile(values, q):
    """Nearest rank; with fewer than 100 values p99 is the maximum."""
    if not values:
        return None
    s = sorted(values)
    rank = max(1, -(-len(s) * q // 100))
    return s[int(rank) - 1]


def proc(r, role):
    p = r["procs"].get(role)
    return p if p and "error" not in p else None


def per_million(r, seconds):
    return seconds / r["delivered"] * 1e6 if r["delivered"] and seconds is not None else None


def counter(r, name):
    return r["counters"].get(name)


def per_sample(r, name):
    value = counter(r, name)
    return value / r["delivered"] if value is not None and r["delivered"] else None


def delays(r):
    return [d for _, d in r.get("freshness", {}).get("delays", [])]


def cpu(r, *roles):
    procs = [proc(r, role) for role in roles if role in r["procs"]]
    if not procs or any(p is None for p in procs):
        return None
    return sum(p["cpu_s"] for p in procs)


# (label, value of one result or None, format, has a ratio)
FIGURES = [
    (
        "samples delivered of expected",
        lambda r: r["delivered"] / r["expected"] * 100 if r["expected"] else None,
        "pct",
        False,
    ),
    ("CPU-s per 1M samples: agent (the sending process)", lambda r: per_million(r, cpu(r, "sender")), "{:.2f}", True),
    (
        "CPU-s per 1M samples: receiver",
        lambda r: per_million(r, cpu(r, "receiver")) if "receiver" in r["procs"] else None,
        "{:.2f}",
        False,
    ),
    (
        "CPU-s per 1M samples: agent + receiver",
        lambda r: per_million(r, cpu(r, *[k for k in ("sender", "receiver") if k in r["procs"]])),
        "{:.2f}",
        True,
    ),
    (
        "peak RSS, MiB (VmHWM of the agent)",
        lambda r: proc(r, "sender") and proc(r, "sender")["hwm_kib"] / MIB,
        "{:.1f}",
        True,
    ),
    (
        "KiB per series (peak RSS ÷ series)",
        lambda r: proc(r, "sender") and proc(r, "sender")["hwm_kib"] / r["series"],
        "{:.2f}",
        True,
    ),
    (
        "mean RSS in the window, MiB",
        lambda r: proc(r, "sender") and proc(r, "sender")["mean_rss_kib"] / MIB,
        "{:.1f}",
        True,
    ),
    ("receiver peak RSS, MiB", lambda r: proc(r, "receiver") and proc(r, "receiver")["hwm_kib"] / MIB, "{:.1f}", False),
    ("wire bytes per sample (TCP, agent → its receiver)", lambda r: per_sample(r, "wire_bytes"), "{:.2f}", True),
    ("payload bytes per sample (agent's own counter)", lambda r: per_sample(r, "payload_bytes"), "{:.2f}", True),
    ("freshness p50, s (scrape → queryable in the sink)", lambda r: percentile(delays(r), 50), "{:.2f}", True),
    ("freshness p99, s", lambda r: percentile(delays(r), 99), "fresh", True),
    (
        "warning/error log lines (agent, receiver)",
        lambda r: sum(v["count"] for v in r.get("log_issues", {}).values()),
        "{:.0f}",
        False,
    ),
]


def fmt(value, style, r):
    if value is None:
        return "—"
    if style == "pct":
        return f"{r['delivered']:,} / {r['expected']:,} ({value:.1f} %)"
    if style == "fresh":
        d = delays(r)
        return f"{value:.2f} (max {max(d):.2f}; {len(d)} of {r['duration'] // r['interval']} scrapes)"
    return style.format(value)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return ""
    return f"{a / b:.2f}×"


def source_cpu(federate):
    return f" ({federate['plain_cpu_s']:.2f} CPU-s of the source)" if "plain_cpu_s" in federate else ""


def delivered_most(r):
    """Whether a run delivered enough for its memory to reflect the point's series count."""
    return r is not None and r["expected"] and r["delivered"] >= 0.9 * r["expected"]


def render(meta, results):
    skipped = {r["series"]: r["skipped"] for r in results if "skipped" in r}
    federate = {r["series"]: r["source_federate"] for r in results if "source_federate" in r}
    everything, results = results, [r for r in results if "skipped" not in r]
    contenders = []
    for r in results:
        if r["contender"] not in contenders:
            contenders.append(r["contender"])
    labels = {r["contender"]: r["label"] for r in results}
    points = []
    for r in everything:
        if r["series"] not in points:
            points.append(r["series"])
    by = {(r["series"], r["contender"]): r for r in results}
    refs = [c for c in REFERENCES if c in contenders]
    ours = [c for c in contenders if c not in REFERENCES]

    out = []
    s = meta.get("settings", {})
    out.append(f"### Side-by-side, {meta.get('date', '?')}\n")
    if meta.get("note"):
        out.append(f"**{meta['note']}**\n")
    out.append(
        f"- Machine: {meta.get('machine', '?')}; 1/5/15-min load average "
        f"{' '.join(meta.get('loadavg_start', []))} at the start, {' '.join(meta.get('loadavg_end', []))} at the end."
    )
    for k, v in meta.get("versions", {}).items():
        out.append(f"- {k}: `{v}`")
    if s:
        out.append(
            f"- Scrape every {s['interval']} s (the source scrapes the workload every "
            f"{s.get('source_interval', s['interval'])} s); per contender {s['warmup']} s warm-up, "
            f"then {s['duration']} s measured; "
            f"contenders one after another ({', '.join(s['contenders'])}), each with a fresh sink."
            + (" Quick mode: checks the harness, the figures mean little." if s.get("quick") else "")
        )
        if s.get("vmagent_flags"):
            out.append(f"- Extra vmagent flags: `{' '.join(s['vmagent_flags'])}`")
    if federate:
        out.append(
            "- One /federate of the source alone, before the contenders (a floor under every scrape): "
            + "; ".join(
                f"{n:,} series {f['plain_s']:.2f} s plain{source_cpu(f)}, {f['gzip_s']:.2f} s gzip "
                f"({f['bytes'] / 1e6:.1f} MB)"
                for n, f in federate.items()
            )
            + "."
        )
    out.append("")

    head = ["series", "figure"] + [labels[c] for c in contenders]
    for c in ours:
        for ref in refs:
            head.append(f"{labels[c]} ÷ {labels[ref]}")
    out.append("| " + " | ".join(head) + " |")
    out.append("| --- | --- |" + " ---: |" * (len(head) - 2))
    for point in points:
        if point in skipped:
            out.append(f"| **{point:,}** | skipped: {skipped[point]} |" + " — |" * (len(head) - 2))
            continue
        first = True
        for label, value, style, has_ratio in FIGURES:
            values = {c: (value(by[(point, c)]) if (point, c) in by else None) for c in contenders}
            if all(v is None for v in values.values()):
                continue
            row = [f"**{point:,}**" if first else "", label]
            first = False
            for c in contenders:
                row.append(fmt(values[c], style, by[(point, c)]) if (point, c) in by else "—")
            for c in ours:
                for ref in refs:
                    row.append(ratio(values[c], values[ref]) if has_ratio else "")
            out.append("| " + " | ".join(row) + " |")
    # Memory growth per series between two points: the slope, without the fixed base.
    for a, b in zip(points, points[1:], strict=False):
        row = [f"**{a:,} → {b:,}**", "RSS growth per added series, KiB (peak RSS difference ÷ series difference)"]
        values = {}
        for c in contenders:
            ra, rb = by.get((a, c)), by.get((b, c))
            if not (delivered_most(ra) and delivered_most(rb)):
                ra = rb = None  # a point it did not carry says nothing about memory per series
            pa, pb = ra and proc(ra, "sender"), rb and proc(rb, "sender")
            values[c] = (pb["hwm_kib"] - pa["hwm_kib"]) / (b - a) if pa and pb and b != a else None
            row.append("—" if values[c] is None else f"{values[c]:.2f}")
        for c in ours:
            for ref in refs:
                row.append(ratio(values[c], values[ref]))
        out.append("| " + " | ".join(row) + " |")
    out.append("")

    out.append(
        "Details per run: CPU seconds of each process in the window (counted in 10 ms ticks, so a few"
        " ticks make a coarse per-1M figure) and the counters' differences over the window.\n"
    )
    for r in results:
        counters = ", ".join(f"{k} {'n/a' if v is None else f'{v:,.0f}'}" for k, v in r["counters"].items())
        cpus = ", ".join(
            f"{'agent' if role == 'sender' else role} {p['cpu_s']:.2f}"
            for role, p in r["procs"].items()
            if "cpu_s" in p
        )
        line = (
            f"- {r['series']:,} series, {r['label']}: CPU-s {cpus}; {counters}; load {' → '.join(r.get('loadavg', []))}"
        )
        fresh = r.get("freshness", {})
        if fresh.get("query_errors"):
            line += f"; freshness query errors {fresh['query_errors']}"
        if r.get("exited"):
            line += f"; **exited: {', '.join(r['exited'])}**"
        out.append(line)
        for role, issues in r.get("log_issues", {}).items():
            for text in issues["first"]:
                out.append(f"  - {role} log: `{text.strip()}`")
    return "\n".join(out) + "\n"
