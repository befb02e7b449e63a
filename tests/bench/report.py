#!/usr/bin/env python3
"""The benchmark's arithmetic and its report (used by tests/bench/run).

  report.py merge NAME SECONDS CSV...   one load phase: oha's per-request CSV
                                        files (one per load process) merged
                                        into one JSON line on stdout
  report.py show JSON                   one merged phase, as a line for humans
  report.py callgrind FILE              top functions of a callgrind profile,
                                        as JSON on stdout
  report.py perf FILE                   top symbols of a perf cpu-clock
                                        profile, as JSON on stdout
  report.py write DIR OUT               BENCHMARKS.md from DIR/results.jsonl,
                                        DIR/machine.json, DIR/lambda.json, ...
"""

import json
import os
import re
import statistics
import subprocess
import sys


# ---------------------------------------------------------------------------
# merge


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = round((len(sorted_values) - 1) * q)
    return sorted_values[min(i, len(sorted_values) - 1)]


def usage_figures(runs):
    """Part 4: the runs with and without usage recording, paired by round."""
    on = {r["name"].split("/")[2]: r for r in runs if r["name"].startswith("usage-on/")}
    off = {r["name"].split("/")[2]: r for r in runs if r["name"].startswith("usage-off/")}
    rounds = sorted(set(on) & set(off), key=lambda k: int(k.split("-")[1]))
    if not rounds:
        return None
    pairs = [(on[k], off[k]) for k in rounds]
    m_on = statistics.median(p[0]["rps"] for p in pairs)
    m_off = statistics.median(p[1]["rps"] for p in pairs)
    return {"pairs": pairs, "on": m_on, "off": m_off, "ratio": m_on / m_off if m_off else 0}


def merge(name, seconds, files, cpu=None):
    """cpu: (user ticks, system ticks, ticks per second) the server spent
    over the run, from its /proc/PID/stat, or None."""
    durations = []
    statuses = {}
    for path in files:
        with open(path) as f:
            header = f.readline().strip().split(",")
            col_duration = header.index("request-duration")
            col_status = header.index("status")
            for line in f:
                parts = line.rstrip("\n").split(",")
                if len(parts) <= max(col_duration, col_status):
                    continue
                status = parts[col_status]
                statuses[status] = statuses.get(status, 0) + 1
                if status.startswith("2"):
                    durations.append(float(parts[col_duration]))
    durations.sort()
    ok = len(durations)
    answered = sum(statuses.values())
    figures = {}
    if cpu and answered:
        user, system, hz = cpu
        figures = {
            "cpu_user_us": user / hz * 1e6 / answered,
            "cpu_sys_us": system / hz * 1e6 / answered,
            "cpu_us": (user + system) / hz * 1e6 / answered,
        }
    return {
        "name": name,
        "seconds": seconds,
        "processes": len(files),
        "ok": ok,
        "statuses": statuses,
        "rps": ok / seconds,
        "p50_ms": (percentile(durations, 0.50) or 0) * 1e3,
        "p99_ms": (percentile(durations, 0.99) or 0) * 1e3,
        "max_ms": (durations[-1] if durations else 0) * 1e3,
        **figures,
    }


# ---------------------------------------------------------------------------
# callgrind


def callgrind(path, top=25):
    """Self cost (instructions) per function, read from a callgrind output
    file directly (callgrind_annotate 3.19 counts the calls of functions
    still running at a mid-run dump as their callers' own cost), with the
    total and the share of the libraries and crates they belong to."""
    names = {"fn": {}, "ob": {}}
    self_cost = {}
    inclusive = {}
    fn = None
    ob = ""
    skip_next = False
    total = None

    def name(kind, rest):
        rest = rest.strip()
        m = re.match(r"^\((\d+)\)(?: (.*))?$", rest)
        if not m:
            return rest
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), rest)

    with open(path, errors="replace") as f:
        for line in f:
            if not line or line[0] == "#":
                continue
            if line.startswith("fn="):
                fn = (name("fn", line[3:]), ob)
                continue
            if line.startswith("ob="):
                ob = os.path.basename(name("ob", line[3:]))
                continue
            if line.startswith("cfn="):
                name("fn", line[4:])
                continue
            if line.startswith(("cob=",)):
                name("ob", line[4:])
                continue
            if line.startswith("calls="):
                skip_next = True
                continue
            if line.startswith(("totals:", "summary:")):
                total = int(line.split()[1])
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    parts = line.split()
                    if len(parts) >= 2 and fn is not None:
                        inclusive[fn] = inclusive.get(fn, 0) + int(parts[-1])
                    continue
                parts = line.split()
                if len(parts) >= 2 and fn is not None:
                    self_cost[fn] = self_cost.get(fn, 0) + int(parts[-1])
    counted = sum(self_cost.values())
    if total is None:
        total = counted
    rows = [
        {"ir": ir, "function": re.sub(r"'\d+$", "", f), "object": o}
        for (f, o), ir in self_cost.items()
    ]
    merged = {}
    for r in rows:
        key = (r["function"], r["object"])
        merged[key] = merged.get(key, 0) + r["ir"]
    rows = sorted(
        ({"ir": ir, "function": f, "object": o} for (f, o), ir in merged.items()),
        key=lambda r: -r["ir"],
    )
    groups = {}
    for r in rows:
        g = group_of(r["function"], r["object"])
        groups[g] = groups.get(g, 0) + r["ir"]
    # Inclusive cost (own + callees) of the project's own functions: where
    # a request's instructions go, by what the code does. Recursive calls
    # are counted once per level, so only non-recursive names are kept.
    incl = {}
    for key in set(self_cost) | set(inclusive):
        f, o = key
        if "'" in f:
            continue
        incl[f] = incl.get(f, 0) + self_cost.get(key, 0) + inclusive.get(key, 0)
    own = sorted(
        (
            {"ir": ir, "function": f}
            for f, ir in incl.items()
            if re.search(OWN, f) and ir <= total
        ),
        key=lambda r: -r["ir"],
    )
    return {
        "total_ir": total,
        "counted_ir": counted,
        "top": rows[:top],
        "inclusive": own[:top],
        "groups": sorted(groups.items(), key=lambda kv: -kv[1]),
    }


# The project's own code and the libraries it calls directly.
OWN = r"^(<)?(apifactory|runtime|bench_ceiling|ceiling)::|^<?apifactory|^<?runtime::"

GROUPS = [
    ("kernel entry (syscalls: read, write, epoll, futex, fsync)", r"^(__libc_|__GI___libc_|__GI_|syscall|epoll_|__futex|futex|__lll_|pthread_|fdatasync|fsync|write|read|__send|__recv|send|recv|writev|readv|accept|__close|close)"),
    ("malloc and free", r"(malloc|free|realloc|calloc|_int_|tcache|arena|memalign|cfree|unlink_chunk|alloc::alloc|__rust_alloc|__rust_dealloc|__rust_realloc|^_?mi_|mimalloc)"),
    ("memcpy, memmove, memset, strlen", r"(memcpy|memmove|memset|memcmp|bcmp|strlen|__mem|__str)"),
    ("SQLite", r"^(sqlite3|rusqlite|libsqlite3_sys)|sqlite3"),
    ("SHA-256 (key hash)", r"sha2|sha256|Sha256|compress256"),
    ("serde_json (event, response, item)", r"serde_json|serde::|ryu::|itoa::|aws_lambda_events"),
    ("HTTP: hyper, http, axum", r"^(hyper|http::|http_body|axum|tower|matchit|httparse|httpdate|h1::)|hyper::|axum::|http::header|httparse"),
    ("tokio", r"tokio|mio::|parking_lot|crossbeam"),
    ("throttle (governor)", r"governor|quanta"),
    ("logs and time formatting", r"logs::|time::|tracing|OffsetDateTime|fmt::|core::fmt|alloc::fmt|Formatter"),
    ("the runtime's API (validation, routing, ETags)", r"^runtime::|<runtime::|runtime::api|runtime::field|regex_lite|ulid"),
    ("the gateway (routing, keys, quota, event)", r"apifactory::|<apifactory::"),
]


def group_of(function, obj):
    for name, pattern in GROUPS:
        if re.search(pattern, function):
            return name
    if obj.startswith("libc") or obj.startswith("ld-linux"):
        return "libc, other"
    return "other"


# ---------------------------------------------------------------------------
# perf


KERNEL_GROUPS = [
    ("kernel: waking and switching threads (futex, scheduler)", r"(futex|try_to_wake_up|wake_up|finish_task_switch|schedule|_raw_spin_unlock_irqrestore|__switch_to|pick_next|enqueue|dequeue|update_curr|select_task_rq|ttwu)"),
    ("kernel: TCP on loopback", r"(tcp|inet|ip_|sock|skb|net_|napi|__dev_queue_xmit|loopback|__netif|dev_hard_start_xmit|bbr_|validate_xmit|__kfree_skb|raw_local_deliver)"),
    ("kernel: epoll", r"epoll|ep_"),
    ("kernel: files and locks (SQLite's reads, log writes)", r"(vfs_|ext4|fcntl|posix_lock|locks_|generic_file|filemap|pread|pwrite|fdget|__fget|iomap|jbd2|file_)"),
]


def perf_profile(path, top=25):
    """Self CPU time per symbol of one process (perf record -e cpu-clock),
    kernel symbols marked [k], with groups."""
    out = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "-g", "none", "--sort", "sym", "--stdio"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"^\s*([\d.]+)%\s+\[(k|\.)\]\s+(.*?)\s*$", line)
        if m:
            rows.append({"share": float(m.group(1)), "kernel": m.group(2) == "k", "symbol": m.group(3)})
    groups = {}
    for r in rows:
        if r["kernel"]:
            g = "kernel: other"
            for name, pattern in KERNEL_GROUPS:
                if re.search(pattern, r["symbol"]):
                    g = name
                    break
        else:
            g = group_of(r["symbol"], "libc" if re.match(r"^(_int_|__mem|malloc|cfree|free|syscall|__GI|__libc)", r["symbol"]) else "")
        groups[g] = groups.get(g, 0) + r["share"]
    threads = subprocess.run(
        ["perf", "report", "-i", path, "--no-children", "-g", "none", "--sort", "comm", "--stdio"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    by_thread = []
    for line in threads.splitlines():
        m = re.match(r"^\s*([\d.]+)%\s+(\S.*?)\s*$", line)
        if m:
            by_thread.append((m.group(2), float(m.group(1))))
    cpu_ns = None
    m = re.search(r"^# Event count \(approx\.\): (\d+)", out, re.M)
    if m:
        cpu_ns = int(m.group(1))
    return {
        "cpu_ns": cpu_ns,
        "top": rows[:top],
        "groups": sorted(groups.items(), key=lambda kv: -kv[1]),
        "threads": by_thread,
    }


# ---------------------------------------------------------------------------
# write


def fmt_int(x):
    return f"{x:,.0f}"


def fmt_ms(x):
    if x is None:
        return "n/a"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_ratio(x):
    if x is None:
        return "n/a"
    if x >= 10:
        return f"{x:.0f}x"
    return f"{x:.2f}x"


def load_lines(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    return out


def median_of(runs, key):
    values = [r[key] for r in runs]
    return statistics.median(values) if values else None


def verdict(ok):
    return "met" if ok else "**missed**"


PHASES = {
    "plan": "`plan` on a fresh moto",
    "apply": "first `apply`",
    "noop": "second `apply`, no change",
    "code": "`apply` after a code change",
    "definition": "`apply` after a definition change",
}


def fleet_targets(fleet):
    """Rows of the Targets table for part 3 (issue 12's targets)."""
    name = "fleet redeploy (part 3): paced wall time / (AWS's bound / K): first apply, code and definition redeploys"
    wanted = "within 1.1x of AWS's bound, 0 throttling errors"
    if not fleet:
        return [(name, wanted, "not run", None, "")]
    applies = [p for p in fleet["phases"]
               if p["phase"] in ("apply", "code", "definition") and p.get("ratio") is not None]
    refused = sum(p["refused"] for p in fleet["phases"])
    failed = [p["phase"] for p in fleet["phases"] if p["exit"] != 0]
    rows = []
    if applies:
        worst = max(applies, key=lambda p: p["ratio"])
        ok = worst["ratio"] <= 1.1 and refused == 0 and not failed
        got = (", ".join(f"{p['phase']} {p['ratio']:.2f}x" for p in applies) +
               f"; {refused} throttling error(s)" + (f"; failed: {', '.join(failed)}" if failed else ""))
        gap = f"{worst['phase']}: {worst['ratio'] / 1.1:.2f}x the allowed 1.1x" if worst["ratio"] > 1.1 else f"{refused} throttled"
        rows.append((name, wanted, got, ok, gap))
    noop = next((p for p in fleet["phases"] if p["phase"] == "noop"), None)
    if noop:
        rows.append(("fleet: mutating calls of an apply with no change", "0", str(noop["mutating"]),
                     noop["mutating"] == 0, f"{noop['mutating']} made"))
        n = fleet["tenants"]
        per = per_tenant_reads(noop, n)
        rows.append((f"fleet: read calls of an apply with no change ({n} tenants)", "at most 30, none per tenant",
                     f"{noop['reads']} ({per['count']} of them one or more per tenant)",
                     noop["reads"] <= 30 and per["count"] == 0,
                     f"{per['count'] / n:.1f} reads per tenant: {', '.join(per['ops'])}" if per["count"] else
                     f"{noop['reads']} list calls"))
        at600 = noop["bounds"].get("600")
        if at600:
            rows.append(("fleet: an apply with no change of 600 tenants, at AWS's limits (its calls scaled, bound)",
                         "under 10 s", f"{at600['seconds']:.1f} s ({at600['family']})", at600["seconds"] < 10,
                         f"{at600['seconds']:.1f} s"))
    return rows


def per_tenant_reads(phase, tenants):
    """The read operations a phase made about once per tenant or more."""
    ops = [(k, v) for k, v in phase["operations"].items() if not v["mutating"] and v["calls"] >= tenants / 2]
    return {"count": sum(v["calls"] for _, v in ops), "ops": [k for k, _ in ops]}


def fleet_section(fleet, w):
    n = fleet["tenants"]
    project = fleet.get("project", [])
    phases = fleet["phases"]
    w(
        f"`bench-fleet` (tests/bench/tools/src/bin/fleet.rs) writes {n} tenant files, copies of the "
        f"{fleet['templates']} in `tenants/` in turn (ids `acme-000`, `bookshop-001`, ...; each custom domain "
        f"moved under its copy's id, and the one hosted zone the templates name made once in moto), then runs "
        f"the release CLI as a user would, once per phase, all against one fresh moto 5.2.5 server: "
        f"`apifactory plan --json`, `apply`, `apply` again, `apply` with a changed artifact, and `apply` after "
        f"one more field in every collection, each with "
        f"`--target aws --tenants DIR --artifact PATH` and `APIFACTORY_PACE=K`, with the CLI's default "
        f"concurrency{'' if not fleet.get('concurrency') else ' (' + str(fleet['concurrency']) + ')'}. "
        f"`AWS_ENDPOINT_URL` points at a fresh fault proxy per phase (tests/support/fault_proxy.rs, the e2e "
        f"tests' own, with no injected faults) that names every request by its AWS operation, counts it, and "
        f"enforces every family of the pacer's table (`apifactory::aws::pacer::LIMITS`: API Gateway's 10 rps "
        f"burst 40 for all its calls, CreateDeployment 1 every 5 s, domain names 1 every 30 s, Lambda's 15 rps, "
        f"...) scaled by the same K; a call it refuses gets the service's throttling error, and counts as a "
        f"throttling error the factory met. Which operations a family covers is the benchmark's own reading of "
        f"the published limits (`FAMILIES` in fleet.rs), not taken from the factory's code."
    )
    w("")
    functions = sum(p["operations"].get("lambda:CreateFunction", {}).get("calls", 0) for p in phases)
    w(
        f"The artifact is `{fleet.get('artifact')}` ({fleet.get('artifact_bytes', 0):,} bytes), a Rust "
        f"`provided.al2023` function, not the release `bootstrap`: moto keeps every uploaded zip in memory "
        f"(about 17 MB of moto per function with the release bootstrap's zip, measured on 10 tenants, so about "
        f"{17 * functions / 1024:.0f} GB for this fleet's {functions} functions), and neither the calls nor the pacing depend on the zip. The code change is "
        f"that executable with bytes appended (`target/bench/bootstrap-changed`), so every function's zip and "
        f"`CodeSha256` differ. Only the calls are emulated: moto answers in milliseconds what AWS answers in "
        f"tens to hundreds (and CloudFront-backed domain creation takes longer), so the wall times are the "
        f"pacing's, not AWS's."
        + "".join(
            f" moto's resident memory after the last phase: {m['rss_mib']:,} MiB (peak {m['peak_mib']:,} MiB)."
            for m in [phases[-1].get("moto_memory")] if m and m.get("rss_mib") is not None
        )
        + f" The four phases took {fleet.get('total_s', 0):.0f} s in all."
    )
    w("")
    w(
        "The lower bound of a phase: its accepted calls by family, scaled per tenant (linearly: a few of the "
        "calls, such as the first page of each list, are per run, so the scaled bound slightly over-counts "
        "them), and for each family `max(0, calls - burst) * every` (a token bucket lets `burst` calls "
        "through at once, then one every `every`); the largest is the bound and its family binds. It is what "
        "AWS's published limits alone force, with every other family and every dependency assumed free, at "
        "K = 1. The paced run at K is compared with `bound / K`."
    )
    w("")
    w(f"| phase | K | wall s | exit | calls | per tenant | mutating | reads | throttled | bound at {n} tenants (K = 1) | "
      + " | ".join(f"bound at {m}" for m in project) + " | bound / K | wall / (bound / K) |")
    w("| --- " * (12 + len(project)) + "|")
    for p in phases:
        b = p["bounds"]
        def bfmt(m):
            x = b.get(str(m))
            return f"{x['seconds']:,.0f} s ({x['family']})" if x else "-"
        ratio = f"{p['ratio']:.2f}x" if p.get("ratio") is not None else "-"
        w(
            f"| {PHASES.get(p['phase'], p['phase'])} | {p['pace']:g} | {p['wall_s']:.1f} | {p['exit']} | {p['calls']:,} | "
            f"{p['per_tenant']:.1f} | {p['mutating']:,} | {p['reads']:,} | {p['refused']} | {bfmt(n)} | "
            + " | ".join(bfmt(m) for m in project)
            + f" | {p['paced_bound_s']:.1f} s | {ratio} |"
        )
    w("")

    # Calls by operation, phases side by side.
    ops = sorted({k for p in phases for k in p["operations"]})
    w(f"Calls by operation ({n} tenants; refused calls included, none were):")
    w("")
    w("| operation | " + " | ".join(PHASES.get(p["phase"], p["phase"]) for p in phases) + " | mutating | pacer families |")
    w("| --- " * (len(phases) + 3) + "|")
    for op in ops:
        info = next(p["operations"][op] for p in phases if op in p["operations"])
        cells = [str(p["operations"][op]["calls"]) if op in p["operations"] else "" for p in phases]
        w(f"| `{op}` | " + " | ".join(cells) + f" | {'yes' if info['mutating'] else ''} | {', '.join(info['families'])} |")
    w("")

    # The bounds, family by family.
    w("The bound, family by family (calls scaled per tenant; seconds at AWS's limits, K = 1):")
    w("")
    sizes = [n] + list(project)
    w("| phase | family | limit | " + " | ".join(f"calls at {m}" for m in sizes) + " | "
      + " | ".join(f"bound at {m}" for m in sizes) + " |")
    w("| --- " * (3 + 2 * len(sizes)) + "|")
    for p in phases:
        rows = {r["family"]: {} for r in p["bounds"][str(n)]["families"]}
        for m in sizes:
            for r in p["bounds"][str(m)]["families"]:
                rows.setdefault(r["family"], {})[m] = r
        ranked = sorted(rows.items(), key=lambda kv: -kv[1][n]["bound_s"] if n in kv[1] else 0)
        for fam, by in ranked[:3]:
            first = by.get(n) or next(iter(by.values()))
            w(f"| {PHASES.get(p['phase'], p['phase'])} | {fam} | {first['limit']} | "
              + " | ".join(f"{by[m]['calls']:,.0f}" if m in by else "" for m in sizes) + " | "
              + " | ".join(f"{by[m]['bound_s']:,.1f} s" if m in by else "" for m in sizes) + " |")
    w("")
    w("(The three slowest families of each phase.)")
    w("")

    noop = next((p for p in phases if p["phase"] == "noop"), None)
    if noop:
        per = per_tenant_reads(noop, n)
        lists = noop["reads"] - per["count"]
        if per["count"] == 0:
            w(
                f"The apply with no change made {noop['mutating']} mutating call(s) and {noop['reads']} reads, "
                f"all of them account-wide list calls (a page each: list calls take 50 to 500 items a page) and "
                f"none per tenant: every tenant's stamp (the fingerprint of its desired state, in its REST API's "
                f"description, which GetRestApis returns) matched its files, and the lists showed its resources, "
                f"so nothing was read one by one. It grows with N / page size, not N."
            )
        else:
            w(
                f"The apply with no change made {noop['mutating']} mutating call(s) and {noop['reads']} reads: "
                f"{lists} list calls (a page each: list calls take 50 to 500 items a page) and {per['count']} reads "
                f"made once per tenant or per resource ({', '.join(f'`{o}`' for o in per['ops'])}), about "
                f"{per['count'] / n:.1f} per tenant: tenants whose stamp did not match were read whole."
            )
        w("")
    code = next((p for p in phases if p["phase"] == "code"), None)
    if code:
        upd = sum(v["calls"] for k, v in code["operations"].items() if k.endswith(":UpdateFunctionCode"))
        w(
            f"The code redeploy made {code['calls'] / n:.1f} calls per tenant ({code['mutating'] / n:.1f} mutating): "
            f"{upd} `UpdateFunctionCode` ({upd / n:.1f} per tenant, one per function), the reads of each tenant "
            f"(its stamp no longer matches, so it is read whole), and per function the reads the apply makes "
            f"around each update "
            + ", ".join(f"`{k.split(':')[1]}` {v['calls']}" for k, v in code["operations"].items()
                        if k.startswith("lambda:") and not v["mutating"] and v["calls"] >= upd / 2)
            + "."
        )
        w("")
    by_phase = {p["phase"]: p for p in phases}

    def fam_bound(p, family):
        for r in p["bounds"][str(n)]["families"]:
            if r["family"] == family:
                return r["bound_s"] / p["pace"]
        return 0.0

    w("### Where the paced time goes")
    w("")
    first = by_phase.get("apply")
    if first and first.get("ratio") is not None:
        w(
            f"First apply: {first['wall_s']:.1f} s at K = {first['pace']:g} against a bound of "
            f"{first['paced_bound_s']:.1f} s ({first['ratio']:.2f}x), set by "
            f"{first['bounds'][str(n)]['family']} ({first['refused']} call(s) throttled). At AWS's own limits "
            f"that bound is {first['bounds'][str(n)]['seconds'] / 60:,.0f} minutes for {n} tenants"
            + "".join(f", {first['bounds'][str(m)]['seconds'] / 3600:,.1f} hours at {m}" for m in project)
            + "."
        )
        w("")
    if noop and noop.get("ratio") is not None:
        w(
            f"No-change apply: {noop['wall_s']:.1f} s against {noop['paced_bound_s']:.1f} s "
            f"({noop['ratio']:.2f}x), set by {noop['bounds'][str(n)]['family']}: the lists, two strands at "
            f"once (DynamoDB, IAM, Lambda and API keys on one; the REST APIs, then usage plans and domain names, "
            f"on the other), and the log groups only when some tenant must be read."
        )
        w("")
    if code and code.get("ratio") is not None:
        lam = fam_bound(code, "Lambda")
        w(
            f"Code redeploy: {code['wall_s']:.1f} s against {code['paced_bound_s']:.1f} s "
            f"({code['ratio']:.2f}x), {code['refused']} call(s) throttled. The apply is pipelined "
            f"(`deploy/src/pipeline.rs`): after the lists, each tenant's own reads, plan and updates flow "
            f"through while other tenants are still read, so Lambda's 15 rps ({lam:.1f} s for the updates) "
            f"holds the run, not the reads followed by the updates (the two-step apply measured 45.8 s, 1.48x, "
            f"before). A tenant's five functions update at once (its actions run as their dependencies "
            f"allow, `Kind::needs`), an update neither reads its function first nor re-checks its invoke "
            f"permission (the plan's list shows the code differs; drift reads the permission), and the pacer "
            f"leaves a third of each burst unused, so updates that left it in step but reached the proxy "
            f"bunched (a 3 MB zip each, signed and sent on 2 cores) find tokens."
        )
        w("")
    definition = by_phase.get("definition")
    if definition and definition.get("ratio") is not None:
        w(
            f"Definition redeploy (one more field in every tenant's collection): {definition['wall_s']:.1f} s at "
            f"K = {definition['pace']:g} against {definition['paced_bound_s']:.1f} s "
            f"({definition['ratio']:.2f}x), set by {definition['bounds'][str(n)]['family']}, "
            f"{definition['refused']} call(s) throttled: every REST API is put again and deployed "
            f"(CreateDeployment, 1 every 5 s at AWS's limits: "
            f"{definition['bounds'][str(n)]['seconds'] / 60:,.0f} minutes for {n} tenants), and every function, "
            f"which ships with its collection, is updated."
        )
        w("")
    rates = [
        (label, ph["calls"] / ph["paced_bound_s"])
        for label, ph in (("first apply", first), ("code redeploy", code), ("definition redeploy", definition))
        if ph and ph.get("paced_bound_s")
    ]
    if rates:
        w(
            "K is chosen per phase so that moto is not what the ratio measures: moto answers about 75 calls a "
            "second on this machine with the CLI and the proxy beside it, and a phase that needs nearly that "
            "many (its calls over its bound / K) waits on moto, not on the pacing (at K = 20 for the first "
            "apply and 10 for the definition redeploy, 66 and 103 a second, both phases ran at moto's pace: "
            "1.21x and 1.47x). Here: "
            + ", ".join(f"{label} {rate:.0f} calls a second" for label, rate in rates)
            + "."
        )
        w("")
    if first and first.get("own_count"):
        w(
            f"The CLI's own count for the first apply, from its pacer: \"{first['own_count']}\" (after the lists). "
            f"The proxy counted {first['mutating']:,} mutating calls and {first['reads']:,} reads in the whole run: "
            f"every mutating call takes a token of the pacer first, the table's included (point-in-time recovery "
            f"and the DescribeTable polls go through `deploy/src/aws/table/ops.rs`, paced)."
        )
        w("")
    w(
        "At 600 tenants a region is full: 600 Regional REST APIs is AWS's cap (it cannot be raised), and "
        "four of the five templates have a custom domain, so 480 domain names against a default quota of "
        "120 (raisable). The bounds at 600 are per-tenant scalings of the calls measured here; the fleet "
        "was not run at 600 (moto would hold 3,000 functions' zips, and the first apply is paced by "
        "CreateDomainName's 1 every 30 s: hours at AWS's limits)."
    )
    w("")


CELL_PHASES = {
    "plan": "one `plan --json` on fresh servers",
    "apply": "one first `apply`",
    "noop": "one `apply` with no change",
    "code": "one `apply` after a code change",
}

ACCOUNT_IDS = ["123456789012", "210987654321"]


def fmt_s(x):
    if x is None:
        return "-"
    return f"{x / 3600:.1f} h" if x >= 3600 else f"{x:,.0f} s" if x >= 10 else f"{x:.1f} s"


def load_cells(directory):
    path = os.path.join(directory, "cells.json")
    if not os.path.exists(path):
        return None
    try:
        return json.load(open(path))
    except ValueError:
        return None


def cell_name(cells, c):
    """A cell as the CLI names it: account id / region."""
    i = c["account_index"]
    return f"{ACCOUNT_IDS[i] if i < len(ACCOUNT_IDS) else 'account ' + str(i + 1)}/{c['region']}"


def cells_targets(cells):
    """Rows of the Targets table for part 6 (issue 17's cells row)."""
    name = "fleet over 4 cells (part 6): one first `apply`'s paced wall time / the slowest cell's bound / K"
    wanted = "within 1.1x (not the cells' sum), 0 throttling errors"
    if not cells:
        return [(name, wanted, "not run", None, "")]
    rows = []
    apply = next((p for p in cells["phases"] if p["phase"] == "apply"), None)
    if apply and apply.get("ratio_slowest") is not None:
        refused = sum(p["refused"] for p in cells["phases"])
        failed = [p["phase"] for p in cells["phases"] if p["exit"] != 0]
        r = apply["ratio_slowest"]
        ok = r <= 1.1 and refused == 0 and not failed
        got = (f"{r:.2f}x ({apply['ratio_sum']:.2f}x the cells' sum); {refused} throttling error(s)"
               + (f"; failed: {', '.join(failed)}" if failed else ""))
        gap = f"{r / 1.1:.2f}x the allowed 1.1x" if r > 1.1 else f"{refused} throttled"
        rows.append((name, wanted, got, ok, gap))
        proj = apply["projected"]
        if proj.get("slowest_bound_s") is not None:
            s, total = proj["slowest_bound_s"], proj["sum_bound_s"]
            rows.append((f"fleet of {fmt_int(proj['tenants'])} tenants over 4 cells, first `apply` at AWS's limits "
                         "(each cell's calls scaled per tenant; bound)",
                         "about the slowest cell's bound, not the sum",
                         f"{fmt_s(s)} ({proj['slowest_family']}) at {r:.2f}x: about {fmt_s(s * r)}; "
                         f"one cell after another {fmt_s(total)}",
                         r <= 1.1, f"{r:.2f}x the slowest cell's bound"))
    noop = next((p for p in cells["phases"] if p["phase"] == "noop"), None)
    if noop:
        worst = max(c["mutating"] for c in noop["cells"])
        rows.append(("fleet over 4 cells: mutating calls of an apply with no change, in any cell", "0",
                     str(worst), worst == 0 and noop["exit"] == 0, f"{worst} made"))
    return rows


def ratio_or_dash(phase, key):
    """A phase's ratio, or "-" where its bound is under a second (the
    ratio would measure the CLI's start, not the pacing)."""
    if not phase.get(key) or phase["slowest_paced_bound_s"] < 1:
        return "-"
    return fmt_ratio(phase[key])


def cells_section(cells):
    """Part 6 as markdown lines."""
    L = []
    w = L.append
    per = cells["per_cell"]
    n = cells["tenants"]
    regions = cells["regions"]
    phases = cells["phases"]
    by = {p["phase"]: p for p in phases}
    w(
        f"`bench-cells` (tests/bench/tools/src/bin/cells.rs) stands for {cells['accounts']} accounts with "
        f"{cells['accounts']} fresh moto 5.2.5 servers (the second started with `MOTO_ACCOUNT_ID=210987654321`), "
        f"each with {len(regions)} regions ({', '.join(regions)}): {len(cells['cells'])} cells. It writes {n} tenant "
        f"files, {per} per cell, copies of the {cells['templates']} in `tenants/` in turn as part 3 makes them, each "
        f"placed by its `[deploy]` (`profile`, `region`), its custom domain's ACM certificate made in its cell's "
        f"account and region (plan checks both) and the templates' hosted zone made once per account. The AWS "
        f"config file (`AWS_CONFIG_FILE`; no `AWS_ENDPOINT_URL`, no credentials in the environment) has one "
        f"profile per cell, `cell-<account>-<region>`, whose `endpoint_url` is that cell's own fault proxy in front "
        f"of its account's moto: both profiles of an account resolve to the same account id, so the CLI's cells "
        f"are the (account, region) pairs, and each proxy sees exactly one cell's calls. Each proxy enforces every "
        f"family of the pacer's table scaled by K, as part 3's does, for its cell alone (AWS's limits are per "
        f"account and region), and counts each call by its operation. Then the release CLI runs once per phase "
        f"over all {n} tenants: `apifactory plan --json`, `apply --yes`, `apply --yes` again, each with "
        f"`--target aws --tenants DIR --artifact PATH` and `APIFACTORY_PACE=K`; the CLI runs the cells in "
        f"parallel, each with its own clients and pacer (`deploy/src/cells.rs`)."
    )
    w("")
    seen = (by.get("plan") or {}).get("cells_seen")
    if seen:
        w("The cells as `plan --json` names them: "
          + "; ".join(f"{c['cell']}, {c['tenants']} tenants, {c['actions'] if c['actions'] is not None else '?'} actions"
                      + (f", error {c['error']}" if c.get("error") else "") for c in seen) + ".")
        w("")
    w(
        "Each cell's lower bound is part 3's, from that cell's accepted calls alone: for each family "
        "`max(0, calls - burst) * every` at AWS's limits (K = 1), the largest binding. Cells paced in parallel "
        "cannot finish before the slowest cell's bound / K, and a run that paced the cells one after another (or "
        "through one pacer) would take the sum of their bounds / K. moto answers in milliseconds, so the wall "
        "time is the pacing's. Other work (other engineers' builds and tests on the same 2 cores) ran alongside; "
        "paced time depends on the limits, not on the machine's speed, as long as moto keeps up."
    )
    w("")
    apply = by.get("apply")
    if apply and apply.get("slowest_paced_bound_s"):
        rate = apply["calls"] / apply["slowest_paced_bound_s"]
        w(f"K is chosen as part 3 chooses it, so that moto is not what the ratio measures: the {len(cells['cells'])} "
          f"cells' first apply needs {rate:.0f} calls a second of the two moto servers at K = {apply['pace']:g} "
          f"(its calls over the slowest cell's bound / K); part 3's first apply needs 31 a second of one moto at "
          f"K = 10, and moto answers about 75 a second on this machine with the CLI and the proxies beside it.")
        w("")
    w("| phase | K | wall s | exit | calls | mutating | throttled | slowest cell's bound / K | sum of the cells' bounds / K | wall / slowest | wall / sum |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for p in phases:
        w(f"| {CELL_PHASES.get(p['phase'], p['phase'])} | {p['pace']:g} | {p['wall_s']:.1f} | {p['exit']} | "
          f"{fmt_int(p['calls'])} | {fmt_int(p['mutating'])} | {p['refused']} | {fmt_s(p['slowest_paced_bound_s'])} | "
          f"{fmt_s(p['sum_paced_bound_s'])} | {ratio_or_dash(p, 'ratio_slowest')} | {ratio_or_dash(p, 'ratio_sum')} |")
    w("")
    proj_n = cells["project"]
    per_proj = proj_n // max(1, len(cells["cells"]))
    w(f"Per cell ({per} tenants each; the bound at {per_proj} tenants, a {fmt_int(proj_n)}-tenant fleet's share, "
      f"scales the cell's calls per tenant as part 3 does; last call: when the cell's last call reached its proxy, "
      f"from the CLI's start):")
    w("")
    w(f"| phase | cell | calls | per tenant | mutating | reads | throttled | bound (K = 1) | bound / K | last call | bound at {per_proj} tenants |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for p in phases:
        for c in p["cells"]:
            w(f"| {CELL_PHASES.get(p['phase'], p['phase'])} | {cell_name(cells, c)} | {fmt_int(c['calls'])} | "
              f"{c['per_tenant']:.1f} | {fmt_int(c['mutating'])} | {fmt_int(c['reads'])} | {c['refused']} | "
              f"{fmt_s(c['bound_s'])} ({c['family']}) | {c['paced_bound_s']:.1f} s | "
              f"{fmt_s(c['last_call_s'])} | "
              f"{fmt_s(c['projected_bound_s'])} ({c['projected_family']}) |")
    w("")
    if apply:
        pr = apply["projected"]
        r = apply.get("ratio_slowest")
        w(f"### {fmt_int(proj_n)} tenants over four cells")
        w("")
        w(f"moto keeps every function's zip in memory (about 13 MB of moto per tenant with bench-hello's zip), so "
          f"{fmt_int(proj_n)} tenants would need about {13 * proj_n / 1024:.0f} GB of moto: the run above has {per} "
          f"per cell, and the figures at {fmt_int(proj_n)} ({per_proj} per cell) come from its counted calls per "
          f"tenant per family per cell, as part 3 works out 600 from 100. The first apply of {fmt_int(proj_n)} "
          f"tenants over the four cells, at AWS's own limits: the slowest cell's bound is {fmt_s(pr['slowest_bound_s'])} "
          f"({pr['slowest_family']}); the cells one after another would take {fmt_s(pr['sum_bound_s'])}. At the ratio "
          f"measured here ({fmt_ratio(r) if r else '-'} of the slowest cell's bound), one apply takes about "
          f"{fmt_s(pr['slowest_bound_s'] * (r or 1))}. One region could not hold them at all: 600 Regional REST APIs "
          f"is AWS's cap per region and cannot be raised.")
        w("")
        aw = apply.get("account_wide") or []
        lines = []
        for a in aw:
            for f in a["families"]:
                lines.append(f"{ACCOUNT_IDS[a['account_index']] if a['account_index'] < len(ACCOUNT_IDS) else a['account_index']} "
                             f"{f['family']} {fmt_int(round(f['calls_projected']))} calls, {fmt_s(f['bound_projected_s'])}")
        if lines:
            w("IAM and Route 53 are global: AWS holds their limits per account, while the pacer (and each proxy here) "
              "holds them per cell, so an account's two cells could together ask for twice the rate. Their "
              f"account-wide bounds at {fmt_int(proj_n)} tenants ({fmt_int(proj_n // max(1, cells['accounts']))} per "
              f"account, its two cells' calls added): " + "; ".join(lines)
              + (f", all far below the slowest cell's {fmt_s(pr['slowest_bound_s'])}, so pacing them per cell does not "
                 "change the bound; a fleet whose IAM or Route 53 calls came near it would need one bucket per account "
                 "for them." if max(f["bound_projected_s"] for a in aw for f in a["families"]) * 10 < pr["slowest_bound_s"]
                 else f", not far below the slowest cell's {fmt_s(pr['slowest_bound_s'])}: the pacer would need one "
                 "bucket per account for them."))
            w("")
        w(f"Quotas at {per_proj} tenants per cell (four of the five templates have a custom domain): "
          f"{per_proj} REST APIs per region (the cap is 600), {per_proj * 4 // 5} domain names per region (default "
          f"quota 120, raisable: the request comes first), and about {2 * per_proj + 2} IAM roles per account, a "
          f"function role per tenant and one API Gateway logging role per cell (the default quota is 1,000).")
        w("")
    noop = by.get("noop")
    if noop:
        w(f"The apply with no change made {noop['mutating']} mutating call(s) over the four cells "
          f"({', '.join(str(c['mutating']) for c in noop['cells'])} by cell) and {noop['reads']} reads "
          f"({', '.join(str(c['reads']) for c in noop['cells'])}), the CLI's own count per cell: "
          + "; ".join(f"\"{l}\"" for l in noop.get("own_count", [])) + ".")
        w("")
        each = sorted({k for c in noop["cells"] for k, v in c["operations"].items()
                       if not v["mutating"] and v["calls"] >= per / 2})
        if each:
            w(f"Unlike part 3's apply with no change (list calls only, none per tenant), each cell made about one "
              f"read per tenant of {', '.join(f'`{k}`' for k in each)}: at {per_proj} tenants per cell that grows with "
              f"the fleet (IAM's calls are shared by an account's regions). A regression: a cell leaves the roles "
              f"of tenants placed in its account's other cells to those cells, and reads none of them.")
            w("")
    return L

def import_section(directory):
    """Part 5 (tests/bench/import): a bulk import against the durable POST
    rate of the same run, as markdown lines; None when not measured."""
    path = os.path.join(directory, "import.json")
    if not os.path.exists(path):
        return None
    d = json.load(open(path))
    lines = [
        f"`tests/bench/import`: `apifactory data import` (release) of one file of {fmt_int(d['items'])} lines, as "
        "`data export` writes them, into the local target's fresh data directory (the part 1 tenant `bench`, made "
        "by `apply`), timed from the process's start to its end: reading the file, checking every line against the "
        "tenant's fields, looking every id up (`--on-conflict fail`, the default), then writing in batches of 1,000 "
        "lines, one durable transaction each (WAL, `synchronous=FULL`). In the same run, before it, POST through "
        "`apifactory up` on the same tenant as part 1 measures it (64 connections, the load split the same way, every "
        "write durable). The ratio is the medians' ratio: the import's items per second over POST's requests per second.",
        "",
        "| run | POST (rps) | import (s) | import (items/s) |",
        "| --- | --- | --- | --- |",
    ]
    for i in range(max(len(d["post"]), len(d["imports"]))):
        p = d["post"][i]["rps"] if i < len(d["post"]) else None
        m = d["imports"][i] if i < len(d["imports"]) else None
        lines.append(f"| {i + 1} | {fmt_int(p) if p is not None else '-'} | "
                     f"{m['seconds']:.2f} | {fmt_int(m['per_second'])} |" if m else f"| {i + 1} | {fmt_int(p)} | - | - |")
    lines += [
        f"| median | {fmt_int(d['post_rps'])} | | {fmt_int(d['import_per_second'])} |",
        "",
        f"Import / durable POST: {d['ratio']:.2f}x (wanted: at least 1.0x).",
        "",
    ]
    return lines


def cross_check(profiles, extra, cpu_ratio):
    """For each method with instruction profiles of both servers: (method,
    CPU time ratio, user CPU time ratio, instruction ratio, note), gateway
    over ceiling; the note says where CPU time and instructions disagree by
    more than 20 %."""
    out = []
    counts = extra.get("profile_requests", {})
    for op, op_name in (("get", "GET by id"), ("post", "POST (new id each)")):
        g, c = profiles.get(f"gateway-{op}"), profiles.get(f"ceiling-{op}")
        ng, nc = counts.get(f"gateway-{op}"), counts.get(f"ceiling-{op}")
        r = cpu_ratio(op)
        if not (g and c and ng and nc and r):
            continue
        ir = (g["total_ir"] / ng) / (c["total_ir"] / nc)
        ru = cpu_ratio(op, "cpu_user_us")
        gap = r["ratio"] / ir - 1
        if abs(gap) > 0.2:
            note = (f"**they disagree**: CPU time gives a ratio {abs(gap) * 100:.0f} % "
                    f"{'above' if gap > 0 else 'below'} the instructions'")
        else:
            note = f"within 20 % ({gap * 100:+.0f} %)"
        out.append((op_name, r["ratio"], ru["ratio"] if ru else None, ir, note))
    return out


def write(directory, out):
    machine = json.load(open(os.path.join(directory, "machine.json")))
    commands = json.load(open(os.path.join(directory, "commands.json")))
    results = load_lines(os.path.join(directory, "results.jsonl"))
    usage_runs = load_lines(os.path.join(directory, "usage.jsonl"))
    usage = usage_figures(usage_runs)
    lam = None
    if os.path.exists(os.path.join(directory, "lambda.json")):
        lam = json.load(open(os.path.join(directory, "lambda.json")))
    extra = {}
    if os.path.exists(os.path.join(directory, "extra.json")):
        extra = json.load(open(os.path.join(directory, "extra.json")))
    fleet = None
    if os.path.exists(os.path.join(directory, "fleet.json")):
        try:
            fleet = json.load(open(os.path.join(directory, "fleet.json")))
        except ValueError:
            fleet = None
    findings = os.path.join(os.path.dirname(os.path.abspath(__file__)), "FINDINGS.md")
    if os.path.exists(findings):
        extra["findings"] = open(findings).read().strip()
    init_sys = None
    if os.path.exists(os.path.join(directory, "init-syscalls.json")):
        try:
            init_sys = json.load(open(os.path.join(directory, "init-syscalls.json")))
        except ValueError:
            init_sys = None
    profiles = {}
    perfs = {}
    for name in ("gateway-get", "gateway-post", "ceiling-get", "ceiling-post"):
        p = os.path.join(directory, f"profile-{name}.json")
        if os.path.exists(p):
            profiles[name] = json.load(open(p))
        p = os.path.join(directory, f"perf-{name}.json")
        if os.path.exists(p):
            perfs[name] = json.load(open(p))

    # phase name: "<target>/<op>/<kind>" where kind = tput-N | lat
    by = {}
    for r in results:
        target, op, kind = r["name"].split("/")
        slot = by.setdefault((target, op), {"tput": [], "lat": None})
        if kind.startswith("tput"):
            slot["tput"].append(r)
        else:
            slot["lat"] = r

    def tput(target, op):
        s = by.get((target, op))
        if not s or not s["tput"]:
            return None
        return median_of(s["tput"], "rps")

    def tput_p99(target, op):
        s = by.get((target, op))
        if not s or not s["tput"]:
            return None
        return median_of(s["tput"], "p99_ms")

    def ratio(a, b):
        if a is None or b is None or b == 0:
            return None
        return a / b

    def cpu_of(target, op, key="cpu_us"):
        """The server's CPU µs per request in each round, by round name."""
        s = by.get((target, op))
        if not s:
            return {}
        return {r["name"].split("/")[2]: r[key] for r in s["tput"] if key in r}

    def cpu_ratio(op, key="cpu_us"):
        """Gateway over ceiling, CPU per request: the median of the rounds'
        ratios (each round loads both back to back) and the medians."""
        g, c = cpu_of("gateway", op, key), cpu_of("ceiling", op, key)
        rounds = sorted(set(g) & set(c))
        if not rounds:
            return None
        ratios = [g[k] / c[k] for k in rounds if c[k]]
        if not ratios:
            return None
        return {"ratio": statistics.median(ratios), "rounds": ratios,
                "gateway": statistics.median(g.values()), "ceiling": statistics.median(c.values())}

    targets = [
        ("gateway", "`apifactory up` (SQLite, durable writes)"),
        ("ceiling", "ceiling: axum + key check, each method in memory"),
        ("sls", "serverless-offline 13, default (worker threads)"),
        ("sls-inprocess", "serverless-offline 13, `--useInProcess`"),
    ]
    ops = [
        ("get", "GET by id"),
        ("search", "search on an indexed field"),
        ("put", "PUT with `If-Match: *`"),
        ("post", "POST (new id each)"),
    ]

    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    if machine.get("parts", "1,2,3,4,5,6") == "1,2,3,4,5,6":
        when = (f"Every figure below comes from the same run, started {machine['started']} and finished "
                f"{machine['finished']}. ")
    else:
        when = (f"This run measured part(s) {machine['parts'].replace(',', ', ')} (`BENCH_PARTS`), started "
                f"{machine['started']} and finished {machine['finished']}; the other parts' figures come from an "
                f"earlier run ({machine.get('earlier_run', 'none kept in target/bench')}), or are marked not measured. ")
    w(
        "Written by `bash tests/bench/run` (one command: it installs its tools, builds "
        "release, measures, and writes this file). " + when +
        "Absolute figures move with whatever else the machine runs (the load average "
        "when the run started is under Machine): read the ratios, which compare "
        "servers measured back to back in the same rounds, and the instruction "
        "counts, which do not depend on load at all."
    )
    w("")
    w("## Machine")
    w("")
    w("| | |")
    w("| --- | --- |")
    for k in ("cpu", "nproc", "memory", "kernel", "os", "rustc", "node", "oha", "serverless", "serverless_offline", "moto", "load_before"):
        if k in machine:
            w(f"| {k.replace('_', ' ')} | {machine[k]} |")
    w("")

    # ----- targets summary
    g_get = tput("gateway", "get")
    s_get = tput("sls", "get")
    si_get = tput("sls-inprocess", "get")
    g_post = tput("gateway", "post")
    settings = commands.get("load_settings") or (
        f"oha: 4 processes x 1 worker thread x {commands['connections'] // 4} connections, {commands['seconds']} s")
    targets_rows = []
    for op, op_name in ops:
        r = cpu_ratio(op)
        if r is None:
            continue
        limit = 1.4 if op == "get" else 2.0
        targets_rows.append((
            f"{op_name}: CPU per request vs the ceiling's, same method (the servers' own, median of {len(r['rounds'])} "
            f"rounds; {settings})",
            f"at most {limit:.1f}x", f"{r['ratio']:.2f}x ({r['gateway']:.1f} vs {r['ceiling']:.1f} µs)",
            r["ratio"] <= limit, f"{r['ratio'] / limit * 100 - 100:.0f} % over"))
    for op, op_name in ops:
        p99 = tput_p99("gateway", op)
        if p99 is not None:
            targets_rows.append((f"{op_name}: p99 at {commands['connections']} connections", "below 5 ms",
                                 f"{fmt_ms(p99)} ms", p99 < 5, f"{p99 - 5:.2f} ms over"))
    if g_post is not None:
        targets_rows.append(("durable POST per second (2 cores)", "at least 30,000", fmt_int(g_post), g_post >= 30000,
                             f"{fmt_int(30000 - g_post)} short"))
    if g_get is not None and s_get is not None:
        r = ratio(g_get, s_get)
        targets_rows.append((f"GET by id, requests per second vs serverless-offline, default mode ({settings})",
                             "at least 20x", fmt_ratio(r), r >= 20, f"{r / 20 * 100:.0f} % of the way"))
    if g_get is not None and si_get is not None:
        r = ratio(g_get, si_get)
        targets_rows.append((f"GET by id, requests per second vs serverless-offline `--useInProcess` ({settings})",
                             "at least 10x", fmt_ratio(r), r >= 10, f"{r / 10 * 100:.0f} % of the way"))
    if lam:
        b = lam["subjects"].get("bootstrap")
        if b:
            init = b["init_us"]["p50"] / 1000
            targets_rows.append(("function init (spawn to first poll, median)", "below 5 ms", f"{fmt_ms(init)} ms", init < 5,
                                 f"{init - 5:.2f} ms over"))
            hwm = b["hwm_after_invocations_kb"]["max"] / 1024 if b.get("hwm_after_invocations_kb") else b["hwm_after_init_kb"]["max"] / 1024
            targets_rows.append(("function peak RSS (VmHWM, after the warm invocations)", "below 15 MB", f"{hwm:.1f} MiB", hwm < 15,
                                 f"{hwm - 15:.1f} MiB over"))
        if "zip_bytes" in extra:
            z = extra["zip_bytes"] / 1e6
            targets_rows.append(("function zip (the AWS target's package)", "below 5 MB", f"{z:.2f} MB", z < 5,
                                 f"{z - 5:.2f} MB over"))
    if usage:
        r = usage["ratio"]
        targets_rows.append(("GET by id with usage recorded vs `--no-usage`", "within 3 %", f"{(r - 1) * 100:+.1f} %",
                             r >= 0.97, f"{(0.97 - r) * 100:.1f} points over"))
    if os.path.exists(os.path.join(directory, "import.json")):
        d = json.load(open(os.path.join(directory, "import.json")))
        r = d["ratio"]
        targets_rows.append((f"`data import` of {fmt_int(d['items'])} items vs durable POST", "at least 1.0x",
                             f"{r:.2f}x", r >= 1.0, f"{(1.0 - r) * 100:.0f} % short"))
    w("## Targets")
    w("")
    w("| target | wanted | this run | | gap |")
    w("| --- | --- | --- | --- | --- |")
    for name, wanted, got, ok, gap in targets_rows:
        w(f"| {name} | {wanted} | {got} | {verdict(ok)} | {'' if ok else gap} |")
    for name, wanted, got, ok, gap in fleet_targets(fleet):
        w(f"| {name} | {wanted} | {got} | {verdict(ok) if ok is not None else 'not measured'} | {'' if ok else gap} |")
    for name, wanted, got, ok, gap in cells_targets(load_cells(directory)):
        w(f"| {name} | {wanted} | {got} | {verdict(ok) if ok is not None else 'not measured'} | {'' if ok else gap} |")
    w("")
    if extra.get("findings"):
        w("## Gaps and their causes")
        w("")
        w(extra["findings"])
        w("")

    # ----- part 1
    w("## 1. The local gateway's data plane")
    w("")
    w(extra.get("part1_setup", ""))
    w("")
    rounds = commands.get("rounds", commands["runs"])
    w(f"Throughput: {commands['connections']} connections for {commands['seconds']} s (load generator: {settings}), "
      f"after a {commands['warmup']} s warm-up, in each of {rounds} rounds. The four servers run at once; each round "
      f"loads them one after another on one method, then the next method, so that a drift of the machine's load "
      f"weighs on all alike. Figures are the rounds' medians and a ratio the median of the rounds' ratios (each "
      f"round loads both servers back to back); p50 and p99 are the median round's. CPU per request is the "
      f"server's own CPU time over a run (user + system, from `/proc/PID/stat` read just before and just after it, "
      f"every process of its process group, so the peer's Node.js children count too) over the requests it answered "
      f"in it: unlike requests per second it does not depend on how fast the load generator, which shares the two "
      f"cores, can send. Latency: 1 connection for {commands['latency_seconds']} s, at most "
      f"{commands.get('latency_rate', 5000):,} requests a second (one key may not go over 10,000: the same pace for "
      f"every server; those slower than it run back to back).")
    w("")
    w("### CPU per request (µs, the server's own)")
    w("")
    w("| method | " + " | ".join(t[1] for t in targets) + f" | gateway / ceiling ({settings}): median of rounds (min to max) | gateway / ceiling, user time only |")
    w("| --- " * (len(targets) + 3) + "|")
    for op, op_name in ops:
        cells = []
        for t, _ in targets:
            v = cpu_of(t, op)
            cells.append(f"{statistics.median(v.values()):.1f}" if v else "-")
        r = cpu_ratio(op)
        ru = cpu_ratio(op, "cpu_user_us")
        rc = f"{r['ratio']:.2f}x ({min(r['rounds']):.2f}x to {max(r['rounds']):.2f}x)" if r else "-"
        w(f"| {op_name} | " + " | ".join(cells) + f" | {rc} | {fmt_ratio(ru['ratio']) if ru else '-'} |")
    w("")
    w(f"### Requests per second ({commands['connections']} connections)")
    w("")
    w(f"Every ratio here is that of {settings} on each server: on 2 cores the load generator takes a core, so "
      "a server that needs less CPU than the load generator (the ceiling) is measured at the generator's pace, "
      "not its own. The CPU per request above is the figure to compare servers by.")
    w("")
    head = "| method | " + " | ".join(t[1] for t in targets) + " | gateway / ceiling | gateway / sls default | gateway / sls in-process |"
    w(head)
    w("| --- " * (len(targets) + 4) + "|")
    for op, op_name in ops:
        cells = []
        for t, _ in targets:
            v = tput(t, op)
            cells.append(fmt_int(v) if v is not None else "-")
        g = tput("gateway", op)
        rc = ratio(g, tput("ceiling", op))
        rs = ratio(g, tput("sls", op))
        ri = ratio(g, tput("sls-inprocess", op))
        w(f"| {op_name} | " + " | ".join(cells) + f" | {fmt_ratio(rc) if rc else '-'} | {fmt_ratio(rs) if rs else '-'} | {fmt_ratio(ri) if ri else '-'} |")
    w("")
    w("### Spread of the rounds")
    w("")
    w("Min / median / max over the rounds, each server and method.")
    w("")
    w("| method | server | requests per second | CPU µs per request | p99 ms |")
    w("| --- | --- | --- | --- | --- |")

    def spread(values, f):
        if not values:
            return "-"
        return f"{f(min(values))} / {f(statistics.median(values))} / {f(max(values))}"

    for op, op_name in ops:
        for t, t_name in targets:
            sl = by.get((t, op))
            if not sl or not sl["tput"]:
                continue
            runs_ = sl["tput"]
            w(f"| {op_name} | {t_name} | {spread([r['rps'] for r in runs_], fmt_int)} | "
              f"{spread([r['cpu_us'] for r in runs_ if 'cpu_us' in r], lambda x: f'{x:.1f}')} | "
              f"{spread([r['p99_ms'] for r in runs_], fmt_ms)} |")
    w("")
    w("### Latency (ms)")
    w("")
    w("| method | server | p50, 1 connection | p99, 1 connection | p50, 64 connections | p99, 64 connections | max, 64 connections |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    for op, op_name in ops:
        for t, t_name in targets:
            s = by.get((t, op))
            if not s:
                continue
            lat = s["lat"]
            mid = None
            if s["tput"]:
                mid = sorted(s["tput"], key=lambda r: r["rps"])[len(s["tput"]) // 2]
            w(
                f"| {op_name} | {t_name} | {fmt_ms(lat['p50_ms']) if lat else '-'} | {fmt_ms(lat['p99_ms']) if lat else '-'} | "
                f"{fmt_ms(mid['p50_ms']) if mid else '-'} | {fmt_ms(mid['p99_ms']) if mid else '-'} | {fmt_ms(mid['max_ms']) if mid else '-'} |"
            )
    w("")
    cross = cross_check(profiles, extra, cpu_ratio)
    if cross:
        w("### CPU time against instructions")
        w("")
        w("The same ratio, gateway over ceiling for one method, by two methods: the servers' CPU time per request "
          f"under load ({settings}; user + system, and user alone) and the instructions per request that "
          "`valgrind --tool=callgrind` counts in user space (below), which do not depend on load. Instructions "
          "leave out the kernel's work per request (system calls, TCP on loopback, waking threads), which is a "
          "larger share of the ceiling's CPU time than of the gateway's, and they weigh every instruction alike "
          "whatever its cache misses cost.")
        w("")
        w("| method | CPU time (user + system) | CPU time (user) | instructions | |")
        w("| --- | --- | --- | --- | --- |")
        for op_name, cpu_r, user_r, ir_r, note in cross:
            w(f"| {op_name} | {fmt_ratio(cpu_r)} | {fmt_ratio(user_r)} | {fmt_ratio(ir_r)} | {note} |")
        w("")
    w("### Every run")
    w("")
    w("Answers other than 2xx are listed: a throttled (429) or failed request is never counted as served.")
    w("")
    w("| phase | load processes | 2xx | per second | p50 ms | p99 ms | CPU µs per request (user + system) | statuses |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        st = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        cpu = f"{r['cpu_us']:.1f} ({r['cpu_user_us']:.1f} + {r['cpu_sys_us']:.1f})" if "cpu_us" in r else "-"
        w(f"| {r['name']} | {r['processes']} | {fmt_int(r['ok'])} | {fmt_int(r['rps'])} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} | {cpu} | {st} |")
    w("")

    # ----- CPU profiles (perf)
    if perfs:
        w("### Where the time goes: CPU profiles")
        w("")
        w(
            "`perf record -e cpu-clock -g -p PID` (a timer, so it works without hardware counters) samples the "
            "server's CPU time, kernel included, while it serves the same 64-connection load as above "
            "(the release build, target/release, which keeps its symbol table). CPU time per request is the process's CPU "
            "time over the window divided by the requests it answered in it; it is less sensitive to the "
            "machine's other work than requests per second, but not immune to it (cache and scheduler effects)."
        )
        w("")
        w("| profile | requests/s during | CPU µs per request | vs the ceiling's GET |")
        w("| --- | --- | --- | --- |")
        cpu_per = {}
        for name, p in perfs.items():
            run = next((r for r in results if r["name"] == f"perf/{name}/tput-1"), None)
            window = extra.get("perf_windows", {}).get(name)
            if run and window and p.get("cpu_ns"):
                cpu_per[name] = (p["cpu_ns"] / 1e3) / (run["rps"] * window)
        base = cpu_per.get("ceiling-get")
        for name, p in perfs.items():
            run = next((r for r in results if r["name"] == f"perf/{name}/tput-1"), None)
            if name in cpu_per:
                w(f"| {name} | {fmt_int(run['rps'])} | {cpu_per[name]:.1f} | {fmt_ratio(cpu_per[name] / base) if base else '-'} |")
        w("")
        for name, p in perfs.items():
            w(f"#### {name}: CPU time by part (perf)")
            w("")
            w("| part | share of the process's CPU time |")
            w("| --- | --- |")
            for g, share in p["groups"][:14]:
                w(f"| {g} | {share:.1f} % |")
            w("")
            w(f"Top symbols (self; [k] kernel): " + ", ".join(
                f"{'[k] ' if r['kernel'] else ''}`{r['symbol'][:80]}` {r['share']:.1f} %" for r in p["top"][:12]
            ))
            w("")

    if not perfs:
        w("CPU profiles: not taken in this run (they need `perf`, from Debian's linux-perf, and BENCH_PROFILE=1).")
        w("")
    if not profiles:
        w("Instruction profiles: not taken in this run (they need valgrind and BENCH_PROFILE=1).")
        w("")

    # ----- profiles
    if profiles:
        w("### Where the time goes: instruction profiles")
        w("")
        w(extra.get("profile_setup", ""))
        w("")
        per_req = {}
        for name, p in profiles.items():
            n = extra.get("profile_requests", {}).get(name)
            if n:
                per_req[name] = p["total_ir"] / n
        if per_req:
            w("| profile | requests | instructions (user space, whole process) | per request | vs the ceiling, same method |")
            w("| --- | --- | --- | --- | --- |")
            for name, p in profiles.items():
                n = extra["profile_requests"][name]
                pr = per_req[name]
                base = per_req.get("ceiling-" + name.split("-", 1)[1])
                w(f"| {name} | {fmt_int(n)} | {fmt_int(p['total_ir'])} | {fmt_int(pr)} | {fmt_ratio(pr / base) if base else '-'} |")
            w("")
        for name, p in profiles.items():
            if p.get("inclusive"):
                w(f"#### {name}: the project's own functions, inclusive (own + callees)")
                w("")
                w("| share | function |")
                w("| --- | --- |")
                for r in p["inclusive"][:14]:
                    fn = r["function"].replace("|", "\\|")
                    w(f"| {r['ir'] / p['total_ir'] * 100:.1f} % | `{fn[:110]}` |")
                w("")
            w(f"#### {name}: by library and part")
            w("")
            w("| part | share of instructions |")
            w("| --- | --- |")
            for g, ir in p["groups"][:14]:
                w(f"| {g} | {ir / p['total_ir'] * 100:.1f} % |")
            w("")
            w(f"#### {name}: top functions (self cost)")
            w("")
            w("| instructions | share | function |")
            w("| --- | --- | --- |")
            for r in p["top"][:20]:
                fn = r["function"].replace("|", "\\|")
                if len(fn) > 110:
                    fn = fn[:107] + "..."
                w(f"| {fmt_int(r['ir'])} | {r['ir'] / p['total_ir'] * 100:.1f} % | `{fn}` |")
            w("")

    # ----- part 2
    w("## 2. The function (`bootstrap`)")
    w("")
    if lam:
        w(extra.get("part2_setup", ""))
        w("")
        subj = [
            ("bootstrap", "`bootstrap` as shipped (`lambda` profile: opt-level \"s\", fat LTO, 1 codegen unit; DynamoDB store)"),
            ("bootstrap-al2023", "diagnosis: the same `bootstrap` with `provided.al2023`'s certificate layout (this machine's bundle as `tls-ca-bundle.pem`, `ca-bundle.trust.crt` beside it; `SSL_CERT_FILE`, `SSL_CERT_DIR`)"),
            ("bootstrap-one-root", "diagnosis: the same `bootstrap` trusting one root certificate (`SSL_CERT_FILE`)"),
            ("bootstrap-release", "diagnosis: `bootstrap` built with the plain release profile (opt-level 3, thin LTO), as shipped before"),
            ("hello-rust", "Rust floor: `lambda_runtime` echo (bench-hello)"),
            ("hello-node", "Node.js floor: Runtime API echo with `http` (node-hello.js)"),
        ]
        w(f"{lam['spawns']} spawns per subject; warm invocations: {lam['invocations']} per kind on each of the first {lam['warm_spawns']} spawns.")
        w("")
        w("| subject | init p50 ms | init p90 ms | init max ms | VmHWM after init MiB | VmHWM after invocations MiB | first invocation p50 ms | cold start (init + first invocation) p50 ms | warm GET p50 ms | warm GET p99 ms | warm, store not read, p50 ms |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for key, label in subj:
            s = lam["subjects"].get(key)
            if not s:
                continue
            def us(x, k):
                return fmt_ms(x[k] / 1000) if x else "-"
            def kb(x, k):
                return f"{x[k] / 1024:.1f}" if x else "-"
            w(
                f"| {label} | {us(s['init_us'], 'p50')} | {us(s['init_us'], 'p90')} | {us(s['init_us'], 'max')} | "
                f"{kb(s['hwm_after_init_kb'], 'p50')} | {kb(s.get('hwm_after_invocations_kb'), 'max')} | "
                f"{us(s.get('first_invocation_us'), 'p50')} | {us(s.get('cold_us'), 'p50')} | "
                f"{us(s.get('warm_get_us'), 'p50')} | {us(s.get('warm_get_us'), 'p99')} | "
                f"{us(s.get('warm_refused_us'), 'p50')} |"
            )
        w("")
        m = lam.get("moto_get_item_us")
        b = lam["subjects"].get("bootstrap")
        hr = lam["subjects"].get("hello-rust")
        hn = lam["subjects"].get("hello-node")
        rows = []
        if b and hr:
            rows.append(("init, `bootstrap` / Rust floor", fmt_ratio(b["init_us"]["p50"] / hr["init_us"]["p50"])))
            rows.append(("peak RSS after init, `bootstrap` / Rust floor", fmt_ratio(b["hwm_after_init_kb"]["p50"] / hr["hwm_after_init_kb"]["p50"])))
        one = lam["subjects"].get("bootstrap-one-root")
        al = lam["subjects"].get("bootstrap-al2023")
        # Init loads no certificate since the store became lazy (issue 16):
        # the roots' cost is in the first invocation, measured below. A
        # share of init is shown only when one root makes init faster.
        if b and hr and one:
            gap = b["init_us"]["p50"] - hr["init_us"]["p50"]
            saved = b["init_us"]["p50"] - one["init_us"]["p50"]
            if gap > 0 and saved > 0.1 * gap:
                rows.append((
                    "share of `bootstrap`'s init above the Rust floor that loading the machine's root certificates takes",
                    f"{saved / gap * 100:.0f} % ({saved / 1000:.2f} ms of {gap / 1000:.2f} ms)",
                ))
        for subject, layout in ((b, "this machine's (Debian: a bundle and a directory of 146 files)"),
                                (al, "`provided.al2023`'s (one bundle, two files in the directory)")):
            if subject and one and subject.get("first_invocation_us") and one.get("first_invocation_us"):
                rows.append((
                    f"loading the root certificates in {layout} layout: first invocation minus that of one root",
                    f"{(subject['first_invocation_us']['p50'] - one['first_invocation_us']['p50']) / 1000:.2f} ms",
                ))
        if b and hn:
            rows.append(("init, Node.js floor / `bootstrap`", fmt_ratio(hn["init_us"]["p50"] / b["init_us"]["p50"])))
            rows.append(("peak RSS after init, Node.js floor / `bootstrap`", fmt_ratio(hn["hwm_after_init_kb"]["p50"] / b["hwm_after_init_kb"]["p50"])))
        if b and m and b.get("warm_get_us"):
            own = b["warm_get_us"]["p50"] - m["p50"]
            rows.append(("warm GET p50 minus moto's own GetItem p50 (SDK, same item)", f"{own / 1000:.2f} ms (moto GetItem p50 {m['p50'] / 1000:.2f} ms)"))
        if b and hr and b.get("warm_refused_us") and hr.get("warm_refused_us"):
            rows.append(("warm invocation without the store, `bootstrap` / Rust floor", fmt_ratio(b["warm_refused_us"]["p50"] / hr["warm_refused_us"]["p50"])))
        if rows:
            w("| ratio | this run |")
            w("| --- | --- |")
            for a, v in rows:
                w(f"| {a} | {v} |")
            w("")
        if init_sys:
            text = (
                f"Before its first poll, `bootstrap` makes {fmt_int(init_sys['syscalls'])} system calls (one start under "
                f"`strace -f`): {init_sys['cert_opens']} files opened and {init_sys['cert_stats']} paths stat'ed under "
                f"`/etc/ssl/certs` and `/etc/pki`, {fmt_int(init_sys['read_bytes'])} bytes read."
            )
            first_sys = init_sys.get("first_invocation")
            if first_sys:
                text += (
                    f" Its first invocation (a GET by id, its store unreachable) makes {fmt_int(first_sys['syscalls'])}: "
                    f"{first_sys['cert_opens']} files opened and {first_sys['cert_stats']} paths stat'ed there, "
                    f"{fmt_int(first_sys['read_bytes'])} bytes read. The SDK's HTTPS client loads the machine's whole "
                    f"root certificate store (rustls-native-certs: the bundle file, then every file of the certificate "
                    f"directories) and parses it when the DynamoDB client is made, which the function does on the "
                    f"first use of its store (`DynamoStore::lazy`), not during init."
                )
            w(text)
            w("")
        w(
            "Anchors on Lambda itself (FACTS.md, maxday/lambda-perf, hello world, x86_64): Rust about 15.9 ms init and 15 MB, "
            "Node.js 22 about 141 ms and 74 MB; warm about 1.3 ms Rust, 3 ms Node.js. Lambda's init duration includes "
            "its own sandbox work, so a local spawn-to-poll time is a lower bound to compare with the floors above, "
            "not with the anchors directly."
        )
        w("")
        if "zip_bytes" in extra:
            w(
                f"Zip: {fmt_int(extra['zip_bytes'])} bytes ({extra['zip_bytes'] / 1e6:.2f} MB), the AWS target's own reproducible package "
                f"(`apifactory::aws::package`, deflate) of the `bootstrap` it builds (`cargo build --profile lambda`: "
                f"{fmt_int(extra['bootstrap_bytes'])} bytes) "
                f"and `tenants/acme.toml`; Lambda's limit is 50 MB zipped. The Rust floor's binary is "
                f"{fmt_int(extra.get('hello_bytes', 0))} bytes."
            )
            w("")
            if extra.get("zip_small_bytes"):
                w(
                    f"Diagnosis: built with the plain release profile (opt-level 3, thin LTO, 4 codegen units, as "
                    f"the AWS target built it before the `lambda` profile), the same `bootstrap` is "
                    f"{fmt_int(extra['small_bytes'])} bytes and its package {fmt_int(extra['zip_small_bytes'])} bytes "
                    f"({extra['zip_small_bytes'] / 1e6:.2f} MB, {extra['zip_small_bytes'] / extra['zip_bytes']:.2f}x the "
                    f"shipped one); its init and warm invocations are in the table above."
                )
                w("")
        if extra.get("part2_findings"):
            w(extra["part2_findings"])
            w("")
    else:
        w("Not measured in this run.")
        w("")

    # ----- part 3
    w("## 3. Fleet redeploys")
    w("")
    if fleet:
        fleet_section(fleet, w)
    else:
        w("Not measured in this run.")
        w("")

    # ----- part 4
    w("## 4. What recording usage costs")
    w("")
    if usage:
        w("`apifactory up` (release) on one data directory serves the part 1 tenant (`bench`), started again for every run: "
          "with usage recorded (the default: each request's figures added to its key's for the minute under a short lock, "
          "written to SQLite every 400 ms in the background) and with `--no-usage`, alternating in ABBA order so that a "
          "drift of the machine's load weighs on both alike. Each server gets a warm-up, then one throughput run of GET "
          f"by id ({commands['connections']} connections, {commands['seconds']} s, the load split as in part 1). "
          "The ratio is the medians' ratio.")
        w("")
        w("| run | recorded (rps) | `--no-usage` (rps) | recorded p99 (ms) | `--no-usage` p99 (ms) |")
        w("| --- | --- | --- | --- | --- |")
        for i, (on, off) in enumerate(usage["pairs"], 1):
            w(f"| {i} | {fmt_int(on['rps'])} | {fmt_int(off['rps'])} | {fmt_ms(on['p99_ms'])} | {fmt_ms(off['p99_ms'])} |")
        w(f"| median | {fmt_int(usage['on'])} | {fmt_int(usage['off'])} | | |")
        w("")
        w(f"Recorded / not: {usage['ratio']:.3f} ({(usage['ratio'] - 1) * 100:+.1f} %).")
        w("")
    else:
        w("Not measured in this run.")
        w("")

    # ----- part 5
    imported = import_section(directory)
    if imported:
        w("## 5. Bulk import (`apifactory data import`)")
        w("")
        for line in imported:
            w(line)

    # ----- part 6
    cells = load_cells(directory)
    if cells:
        w("## 6. A fleet over cells")
        w("")
        for line in cells_section(cells):
            w(line)

    # ----- commands
    w("## Commands")
    w("")
    w("Everything above was measured by these commands (as `tests/bench/run` ran them; paths relative to the repository):")
    w("")
    w("```sh")
    for c in commands["lines"]:
        w(c)
    w("```")
    w("")
    with open(out, "w") as f:
        f.write("\n".join(L))


def main():
    cmd = sys.argv[1]
    if cmd == "merge":
        files, cpu = sys.argv[4:], None
        if files[:1] == ["--cpu"]:
            cpu, files = tuple(int(x) for x in files[1:4]), files[4:]
        print(json.dumps(merge(sys.argv[2], float(sys.argv[3]), files, cpu)))
    elif cmd == "show":
        r = json.loads(sys.argv[2])
        cpu = f"  CPU {r['cpu_us']:.1f} us/req" if "cpu_us" in r else ""
        print(
            f"bench:   {r['name']:<28} {r['rps']:>9,.0f}/s  p50 {r['p50_ms']:.2f} ms"
            f"  p99 {r['p99_ms']:.2f} ms{cpu}  {r['statuses']}"
        )
    elif cmd == "perf":
        print(json.dumps(perf_profile(sys.argv[2])))
    elif cmd == "callgrind":
        print(json.dumps(callgrind(sys.argv[2])))
    elif cmd == "import-section":
        print("\n".join(import_section(sys.argv[2]) or ["Not measured."]))
    elif cmd == "cells-section":
        cells = load_cells(sys.argv[2])
        print("\n".join(cells_section(cells) if cells else ["Not measured."]))
    elif cmd == "cells-targets":
        for name, wanted, got, ok, gap in cells_targets(load_cells(sys.argv[2])):
            print(f"| {name} | {wanted} | {got} | {verdict(ok) if ok is not None else 'not measured'} | {'' if ok else gap} |")
    elif cmd == "write":
        write(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
