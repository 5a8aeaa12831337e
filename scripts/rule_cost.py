#!/usr/bin/env python3
"""Rule-cost benchmark driver (scripts/rule-cost.sh runs it; see BENCHMARKS.md "Rule cost").

  rule_cost.py shapes NEW_RULES OUT_DIR
      From the generated rules of one counted SLO (NEW_RULES, prometheus-rules.yaml), write
      new.yaml (its groups), old.yaml (the Sloth shape `slo-gateway rules` generated before
      issue 16: every window and the period as sum_over_time of the per-evaluation events, all
      at the global interval) and pyrra.yaml (Pyrra's shape: the period's totals in a 2m30s
      group, every alert window from the events at the global interval). Same event rules and
      alert thresholds in all three.
  rule_cost.py measure URL RULES INTERVAL_S [QUIET_S]
      Evaluates every rule expression of RULES once through URL's query API with stats=all,
      prints per group: rules, samples read, query time, share of one core at the group's
      interval; then the running Prometheus' own rule-group metrics, CPU and RSS; last line
      a JSON summary.
  rule_cost.py accuracy URL
      The period SLI from the hourly rollups against the exact Σ bad / Σ total over the events.
"""
import json
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def dump(path, groups):
    with open(path, "w") as f:
        yaml.safe_dump({"groups": groups}, f, sort_keys=False, width=1000)


def shapes(new_path, out):
    groups = load(new_path)["groups"]
    # One events group: the shared shoot/seed state first, then every counted SLO's events.
    shared = next((g for g in groups if g["name"] == "slo-gateway-events"), None)
    assert shared, "no counted SLO in " + new_path
    first = next(r for r in shared["rules"] if "sloth_id" in r.get("labels", {}))
    labels = first["labels"]
    sid = labels["sloth_id"]
    f = '{sloth_id="%s", sloth_service="%s", sloth_slo="%s"}' % (
        labels["sloth_id"], labels["sloth_service"], labels["sloth_slo"])
    events = dict(shared, rules=[r for r in shared["rules"]
                                 if r.get("labels", {}).get("sloth_id", sid) == sid])
    mine = [events] + [g for g in groups if g["name"].endswith(sid)]
    dump(f"{out}/new.yaml", mine)
    meta = next(g for g in mine if g["name"].startswith("sloth-slo-meta-recordings-"))
    alerts = [g for g in mine if g["name"].startswith("sloth-slo-alerts-")]
    period = next(r["labels"]["sloth_window"] for g in mine for r in g["rules"]
                  if r.get("record", "").startswith("slo:sli_error:ratio_rate")
                  and r["labels"]["sloth_window"] not in WINDOWS)

    def win(w, metric="slo:sli_error:ratio_rate"):
        lab = dict(labels, sloth_window=w)
        return {"record": f"{metric}{w}", "labels": lab, "expr":
                f"(sum_over_time(slo:sli_events:bad{f}[{w}]) / (sum_over_time(slo:sli_events:total{f}[{w}]) > 0))"
                f" or (0 * sum_over_time(slo:sli_events:total{f}[{w}]))"}

    def meta_rules():
        rules = [dict(r) for r in meta["rules"]]
        names = {r["record"] for r in rules}
        for name, w in (("slo:period_burn_rate:ratio", period),):
            if name not in names:
                rules.append({"record": name, "labels": labels, "expr":
                              f"slo:sli_error:ratio_rate{w}{f} / on(sloth_id, sloth_slo, sloth_service) group_left slo:error_budget:ratio{f}"})
                rules.append({"record": "slo:period_error_budget_remaining:ratio", "labels": labels,
                              "expr": f"1 - slo:period_burn_rate:ratio{f}"})
        return rules

    def plain_alerts():
        """Sloth's alerts: the same pairs and thresholds as ours, on recorded windows (ours
        compute their windows in the expression)."""
        out = []
        for g in alerts + [g for g in mine if g["name"].startswith("slo-gateway-rollup-5m-")]:
            rules = []
            for r in g["rules"]:
                if "alert" not in r:
                    continue
                pairs = []
                for pair in r["expr"].strip().split("\nor\n"):
                    conds = []
                    for cond in pair.split("\n    and\n"):
                        numerator = cond.split("\n    /\n")[0]
                        secs = sum(dur(x) for x in re.findall(r"\[([0-9a-z]+)\]\)", numerator))
                        w = next(x for x in WINDOWS if dur(x) == secs)
                        thr = re.search(r"\) > (\([^()]*\))", cond).group(1)
                        conds.append(f"max(slo:sli_error:ratio_rate{w}{f} > {thr}) without (sloth_window)")
                    pairs.append("(" + " and ".join(conds) + ")")
                rules.append(dict(r, expr=" or ".join(pairs)))
            if rules:
                out.append({"name": f"sloth-slo-alerts-{sid}-{len(out)}", "rules": rules})
        return out

    old = [events,
           {"name": f"sloth-slo-sli-recordings-{sid}", "rules": [win(w) for w in WINDOWS + [period]]},
           {"name": f"sloth-slo-meta-recordings-{sid}", "rules": meta_rules()}] + plain_alerts()
    dump(f"{out}/old.yaml", old)
    # Pyrra: <metric>:increase<period> every 2m30s, burn rates per alert window at the global
    # interval, the period's error ratio from the increases.
    inc = [{"record": f"slo:sli_events:{m}:increase{period}", "labels": labels,
            "expr": f"sum_over_time(slo:sli_events:{m}{f}[{period}])"} for m in ("bad", "total")]
    inc.append({"record": f"slo:sli_error:ratio_rate{period}", "labels": dict(labels, sloth_window=period),
                "expr": f"slo:sli_events:bad:increase{period}{f} / clamp_min(slo:sli_events:total:increase{period}{f}, 1e-300)"})
    pyrra = [events,
             {"name": f"pyrra-increase-{sid}", "interval": "2m30s", "rules": inc},
             {"name": f"pyrra-burnrates-{sid}", "rules": [win(w) for w in WINDOWS]},
             {"name": f"sloth-slo-meta-recordings-{sid}", "rules": meta_rules()}] + plain_alerts()
    dump(f"{out}/pyrra.yaml", pyrra)


def get(url, path, **params):
    q = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{q}", timeout=600) as r:
        return json.load(r)


def dur(s):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    total, num = 0, ""
    for ch in s:
        if ch.isdigit():
            num += ch
        else:
            total += int(num) * units[ch]
            num = ""
    return total


def scrape(url):
    """Sums of the Prometheus' own metrics we report, from its /metrics."""
    names = {"prometheus_rule_group_last_duration_seconds": "dur",
             "prometheus_rule_group_iterations_missed_total": "missed",
             "prometheus_rule_group_iterations_total": "iterations",
             "prometheus_rule_evaluation_failures_total": "failures",
             "process_resident_memory_bytes": "rss",
             "process_cpu_seconds_total": "cpu",
             "prometheus_tsdb_head_series": "head_series",
             "go_memstats_heap_inuse_bytes": "heap"}
    m = {v: 0.0 for v in names.values()}
    m["slowest"], durs, ivals = 0.0, {}, {}
    with urllib.request.urlopen(f"{url}/metrics", timeout=60) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#"):
                continue
            name = line.split("{")[0].split(" ")[0]
            if name in ("prometheus_rule_group_last_duration_seconds", "prometheus_rule_group_interval_seconds"):
                group = line.split('rule_group="')[1].split('"')[0]
                v = float(line.rsplit(" ", 1)[1])
                (durs if "duration" in name else ivals)[group] = v
            if name in names:
                v = float(line.rsplit(" ", 1)[1])
                m[names[name]] += v
                if name == "prometheus_rule_group_last_duration_seconds":
                    m["slowest"] = max(m["slowest"], v)
    # Share of one core the rule groups took at their last evaluations.
    m["share"] = sum(d / ivals[g] for g, d in durs.items() if ivals.get(g))
    return m


def measure(url, rules_path, interval, quiet="60"):
    interval, quiet = float(interval), int(quiet) if quiet.isdigit() else 60
    # CPU and RSS of the running Prometheus over a quiet period (no queries of ours).
    first = last = scrape(url)
    quiet_rss = first["rss"]
    for _ in range(quiet // 10):
        time.sleep(10)
        last = scrape(url)
        quiet_rss = max(quiet_rss, last["rss"])
    # The rules' Prometheus without our queries: RSS (max) and heap over the quiet period.
    quiet_heap = last["heap"]
    cpu = (last["cpu"] - first["cpu"]) / quiet if quiet else 0.0
    groups = load(rules_path)["groups"]
    rows, total_samples, total_share = [], 0, 0.0
    for g in groups:
        gi = dur(g["interval"]) if "interval" in g else interval
        samples, secs, shared = 0, 0.0, 0.0
        for r in g["rules"]:
            res = get(url, "/api/v1/query", query=r["expr"], stats="all")
            st = res["data"]["stats"]
            samples += st["samples"]["totalQueryableSamples"]
            secs += st["timings"]["execTotalTime"]
            if g["name"] == "slo-gateway-events" and "sloth_id" not in r.get("labels", {}):
                shared += st["timings"]["execTotalTime"]
        share = secs / gi
        rows.append((g["name"], int(gi), len(g["rules"]), samples, secs, share))
        if shared and shared < secs:
            # The shared shoot and seed state: once per shoot whatever the number of SLOs.
            rows.append(("  of which the shared state", int(gi), 0, 0, shared, shared / gi))
        total_samples += samples * interval / gi   # per global interval
        total_share += share
    print(f"  {'group':58} {'every':>6} {'rules':>5} {'samples':>12} {'query s':>8} {'core':>7}")
    for name, gi, n, samples, secs, share in rows:
        print(f"  {name[:58]:58} {gi:>5}s {n:>5} {samples:>12,} {secs:>8.3f} {share:>7.4f}")
    m = scrape(url)
    print(f"  running Prometheus: Σ last group durations / interval {m['share']:.4f} cores, slowest group {m['slowest']:.3f} s,"
          f" missed iterations {int(m['missed'])} of {int(m['iterations'])}, rule failures {int(m['failures'])},"
          f" CPU {cpu:.3f} cores (quiet minute), RSS {quiet_rss / 2**20:.0f} MiB (after our queries {m['rss'] / 2**20:.0f}), Go heap in use {quiet_heap / 2**20:.0f} MiB, head series {int(m['head_series'])}")
    print("SUMMARY " + json.dumps({
        "samples_per_interval": int(total_samples), "core_share": round(total_share, 5),
        "group_seconds_sum": round(m["dur"], 4), "group_share": round(m["share"], 5), "iterations": m["iterations"], "missed": m["missed"],
        "failures": m["failures"], "cpu": round(cpu, 4), "rss_mib": round(quiet_rss / 2**20),
        "rss_after_queries_mib": round(m["rss"] / 2**20), "heap_mib": round(quiet_heap / 2**20), "head_series": int(m["head_series"])}))


def accuracy(url, rules_path):
    """The period SLI as the rules serve it (the 5-minute group's value of the last evaluation
    t5 ≤ t, from the hourly rollups) against the exact Σ bad / Σ total over the events at t,
    for t 1, 30 and 59 minutes into an hour of the backfilled history. The generator's rollups
    are aligned (phase 0): this measures the lag of the hourly body, the larger of the two
    errors of crates/rules/src/render/prometheus.rs."""
    f = '{sloth_slo="apiserver-availability"}'
    served = next(r["expr"] for g in load(rules_path)["groups"] for r in g["rules"]
                  if r.get("record", "").startswith("slo:sli_error:ratio_rate")
                  and r["labels"].get("sloth_window") not in WINDOWS)
    exact = f"(sum_over_time(slo:sli_events:bad{f}[4w]) / clamp_min(sum_over_time(slo:sli_events:total{f}[4w]), 1e-300))"
    tau = int(time.time()) // 3600 * 3600 - 3 * 3600

    def vec(q, t):
        r = get(url, "/api/v1/query", query=q, time=t)["data"]["result"]
        return {x["metric"].get("cluster"): float(x["value"][1]) for x in r}

    for late in (60, 1800, 3540):
        t = tau + late
        t5 = t // 300 * 300
        a, e = vec(served, t5), vec(exact, t)
        rel = sorted(abs(a[c] / e[c] - 1) for c in e if c in a and e[c] > 0)
        sli = max((abs((1 - a[c]) / (1 - e[c]) - 1) for c in e if c in a), default=float("nan"))
        err = rel[-1] if rel else float("nan")
        q99 = rel[int(0.99 * (len(rel) - 1))] if rel else float("nan")
        mean = sum(e.values()) / max(len(e), 1)
        print(f"  period SLI {late // 60:>2} min into the hour (served from {(t - t5) // 60} min before): error ratio within "
              f"{err:.4%} (p99 {q99:.4%}) of exact, SLI within {sli:.5%}; mean exact error ratio {mean:.6f}; {len(a)} of {len(e)} shoots served")


if __name__ == "__main__":
    cmd = sys.argv[1]
    {"shapes": lambda: shapes(*sys.argv[2:4]),
     "measure": lambda: measure(*sys.argv[2:6]),  # noqa: E501
     "accuracy": lambda: accuracy(*sys.argv[2:4])}[cmd]()
