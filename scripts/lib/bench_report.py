"""Turns the raw outputs of scripts/bench into summary.json, report.md and throughput.svg."""
import csv
import json
import os
import platform
import sys

out, quick, levels, top = sys.argv[1], sys.argv[2] == "1", [int(x) for x in sys.argv[3].split()], int(sys.argv[4])


def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)


def lag_p99_ms(metrics_text):
    """p99 of writer_lag_seconds from its cumulative buckets (upper bound of the bucket)."""
    buckets, count = [], 0
    for line in metrics_text.splitlines():
        if line.startswith("writer_lag_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if le == "+Inf" else float(le), float(line.split()[-1])))
        elif line.startswith("writer_lag_seconds_count"):
            count = float(line.split()[-1])
    for le, cumulative in buckets:
        if count and cumulative >= 0.99 * count:
            return le * 1000
    return None


hot = {s: {c: load(f"hot-{s}-c{c}") for c in levels} for s in ("lua", "lock")}
writer = {s: {c: load(f"writer-{s}-c{c}") for c in levels} for s in ("lua", "lock")}
direct = load(f"direct-lua-c{top}")
backlog = load("writer-backlog")
many = load(f"many-items-lua-c{top}")
with open(os.path.join(out, "redis-benchmark.csv")) as f:
    rows = list(csv.reader(f))
# The test name holds the script arguments (quotes included), so count from the end.
redis_ceiling = float(rows[-1][-7])
rss = {}
with open(os.path.join(out, "rss.txt")) as f:
    for line in f:
        name, mib = line.split()
        rss[name] = float(mib)
oversold = 0
with open(os.path.join(out, "conservation.txt")) as f:
    for line in f:
        oversold += int(line.split()[-1])
with open(os.path.join(out, "writer-metrics.txt")) as f:
    writer_lag_p99 = lag_p99_ms(f.read())
# The histogram's top bucket is 10 s; JSON has no infinity.
lag_text = "n/a" if writer_lag_p99 is None else "over 10 s" if writer_lag_p99 == float("inf") else f"{writer_lag_p99:.0f} ms"
if writer_lag_p99 == float("inf"):
    writer_lag_p99 = None

def cpu_us_per_purchase(purchases):
    """CPU microseconds each process spent per purchase during the direct run."""
    with open(os.path.join(out, "clk_tck.txt")) as f:
        tick_us = 1e6 / float(f.read())
    def ticks(name):
        with open(os.path.join(out, name)) as f:
            return {n: float(t) for n, t in (line.split() for line in f if line.strip())}
    before, after = ticks("cpu-before.txt"), ticks("cpu-after.txt")
    per = {n: (after[n] - before.get(n, 0)) * tick_us / purchases for n in after}
    with open(os.path.join(out, "cpu-loadgen.txt")) as f:
        user, system = f.read().split()[-2:]
    per["loadgen"] = (float(user) + float(system)) * 1e6 / purchases
    return dict(sorted(per.items(), key=lambda kv: -kv[1]))


cpu = cpu_us_per_purchase(max(direct["ok"], 1))
best_writer = max(writer["lua"].values(), key=lambda w: w["applied"])
summary = {
    "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    "quick": quick,
    "concurrency": top,
    "hot_item_lua_rps": hot["lua"][top]["ok_per_s"],
    "hot_item_lock_rps": hot["lock"][top]["ok_per_s"],
    "lock_system_busy": hot["lock"][top]["error_codes"].get("SYSTEM_BUSY", 0),
    "lua_system_busy": hot["lua"][top]["error_codes"].get("SYSTEM_BUSY", 0),
    "gateway_lua_rps": hot["lua"][top]["ok_per_s"],
    "direct_lua_rps": direct["ok_per_s"],
    "redis_ceiling_rps": redis_ceiling,
    "many_items_lua_rps": many["ok_per_s"],
    "writer_events_per_s": best_writer["applied"] / best_writer["seconds"],
    "writer_backlog_events_per_s": backlog["backlog"] / backlog["seconds"],
    "writer_drain_after_load_s": max(w["drain_s"] for w in writer["lua"].values()),
    "writer_lag_p99_ms": writer_lag_p99,
    "rss_mib": rss,
    "direct_cpu_us_per_purchase": cpu,
    "oversold": oversold,
    "latency_ms": {f"{s}-c{c}": hot[s][c]["latency_ms"] for s in hot for c in levels},
}
summary["lua_over_lock"] = summary["hot_item_lua_rps"] / max(summary["hot_item_lock_rps"], 1e-9)
summary["direct_over_ceiling"] = summary["direct_lua_rps"] / redis_ceiling
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=2)

# Chart: purchases/s and p99 against concurrency, both strategies.
W, H, PAD = 720, 360, 60
def polyline(points, xmax, ymax, color, dash=""):
    coords = " ".join(
        f"{PAD + (i / max(len(points) - 1, 1)) * (W - 2 * PAD):.1f},{H - PAD - (y / ymax) * (H - 2 * PAD):.1f}"
        for i, y in enumerate(points)
    )
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" {dash} points="{coords}"/>'
rps_max = max(hot[s][c]["ok_per_s"] for s in hot for c in levels) * 1.1 or 1
p99_max = max(hot[s][c]["latency_ms"]["p99"] for s in hot for c in levels) * 1.1 or 1
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       '<rect width="100%" height="100%" fill="white"/>',
       f'<text x="{W/2}" y="20" text-anchor="middle" font-size="14">Hot item: purchases/s (solid) and p99 ms (dashed) vs concurrency</text>',
       f'<line x1="{PAD}" y1="{H-PAD}" x2="{W-PAD}" y2="{H-PAD}" stroke="black"/>',
       f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H-PAD}" stroke="black"/>',
       f'<line x1="{W-PAD}" y1="{PAD}" x2="{W-PAD}" y2="{H-PAD}" stroke="black"/>',
       f'<text x="{PAD-5}" y="{PAD}" text-anchor="end">{rps_max:.0f}/s</text>',
       f'<text x="{W-PAD+5}" y="{PAD}">{p99_max:.0f} ms</text>']
for i, c in enumerate(levels):
    x = PAD + (i / max(len(levels) - 1, 1)) * (W - 2 * PAD)
    svg.append(f'<text x="{x:.1f}" y="{H-PAD+18}" text-anchor="middle">{c}</text>')
for s, color in (("lua", "#1f77b4"), ("lock", "#d62728")):
    svg.append(polyline([hot[s][c]["ok_per_s"] for c in levels], None, rps_max, color))
    svg.append(polyline([hot[s][c]["latency_ms"]["p99"] for c in levels], None, p99_max, color, 'stroke-dasharray="6,4"'))
svg.append(f'<text x="{PAD+10}" y="{PAD+15}" fill="#1f77b4">lua</text><text x="{PAD+50}" y="{PAD+15}" fill="#d62728">lock</text>')
svg.append("</svg>")
with open(os.path.join(out, "throughput.svg"), "w") as f:
    f.write("\n".join(svg))

lines = [
    "# Benchmark report",
    "",
    f"Machine: {os.cpu_count()} CPUs, {platform.platform()}. {'Quick run. ' if quick else ''}Each load ran "
    f"{hot['lua'][top]['duration_s']:.0f}s, closed loop, loadgen and the whole stack on the same machine.",
    "",
    "| scenario | concurrency | purchases/s | p50 ms | p95 ms | p99 ms | SYSTEM_BUSY |",
    "|---|---|---|---|---|---|---|",
]
for s in ("lua", "lock"):
    for c in levels:
        r = hot[s][c]
        lines.append(f"| hot item, {s}, gateway | {c} | {r['ok_per_s']:.0f} | {r['latency_ms']['p50']:.2f} | "
                     f"{r['latency_ms']['p95']:.2f} | {r['latency_ms']['p99']:.2f} | {r['error_codes'].get('SYSTEM_BUSY', 0)} |")
for label, r in (("hot item, lua, direct", direct), ("50 items, lua, gateway", many)):
    lines.append(f"| {label} | {top} | {r['ok_per_s']:.0f} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p95']:.2f} | "
                 f"{r['latency_ms']['p99']:.2f} | {r['error_codes'].get('SYSTEM_BUSY', 0)} |")
lines += [
    f"| redis-benchmark, same script | {top} | {redis_ceiling:.0f} | | | | |",
    "",
    f"- lua / lock: **{summary['lua_over_lock']:.1f}×**; direct / redis ceiling: **{summary['direct_over_ceiling']:.2f}**",
    f"- stock-writer: {summary['writer_events_per_s']:.0f} events/s applied; lag p99 during the loads "
    f"{lag_text}; "
    f"drained {summary['writer_drain_after_load_s']:.2f}s after the load stopped; alone, it drained a "
    f"backlog of {backlog['backlog']} events in {backlog['seconds']:.1f}s "
    f"({summary['writer_backlog_events_per_s']:.0f} events/s)",
    f"- peak RSS (MiB): " + ", ".join(f"{k} {v:.1f}" for k, v in rss.items()),
    f"- CPU per purchase during the direct run, µs (total {sum(cpu.values()):.0f}, of "
    f"{os.cpu_count() * 1e6 / max(direct['ok_per_s'], 1e-9):.0f} available at that rate): "
    + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items() if v >= 0.5),
    f"- oversold: **{oversold}**",
    "",
    "![throughput](throughput.svg)",
]
with open(os.path.join(out, "report.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
