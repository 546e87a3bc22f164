#!/usr/bin/env python3
"""rampart's benchmark: rampart, nginx, Caddy and HAProxy doing the same job, one core each.

Started by bench/run (which installs the tools and builds rampart). Every measurement starts
the system under test fresh (so peak RSS belongs to that measurement), warms it, loads it
from CPU 1 while it and the origin share CPU 0, records the result and stops it by pid.
Systems are interleaved within each repetition (A B C D A B C D ...).
"""

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONF = os.path.join(HERE, "conf")
SYSTEMS = ["nginx", "rampart", "haproxy", "caddy"]
SCENARIOS = ["plain", "tls", "h2", "posture", "posture-redis", "posture-lease", "large", "new-conns",
             "tls-upstream", "grpc", "idle", "static", "config-size"]
# Scenarios served over TLS.
TLS_SCENARIOS = ("tls", "h2", "posture", "posture-redis", "posture-lease", "new-conns", "tls-upstream", "grpc")
# The posture scenario and its fleet variants (rampart's limit in Redis, with and without a lease).
POSTURE_SCENARIOS = ("posture", "posture-redis", "posture-lease")
# The file the static scenario fetches (a content-hashed 8 KiB script), and its site.
STATIC_FILE = "/assets/app-3f2a1b9c.js"

# What each system can express of the posture scenario.
POSTURE_NOTES = {
    "nginx": "headers, per-IP limit_req, JSON access log",
    "haproxy": "headers, per-IP stick-table limit, JSON log (stdout to file)",
    "caddy": "headers, JSON access log; no rate limit (needs a plugin Debian's caddy lacks)",
    "rampart": "headers, per-IP GCRA limit, JSON access log (PII-masked), Prometheus metrics",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(template, values, posture_inc=None):
    text = open(os.path.join(CONF, template)).read()
    extra = {}
    if posture_inc:
        for line in open(os.path.join(CONF, posture_inc)):
            line = line.rstrip("\n")
            if line.startswith("@") and "=" in line:
                k, v = line.split("=", 1)
                extra[k] = v.replace("\\n", "\n")
    for k in re.findall(r"@[A-Z0-9_]+@", text):
        if k.startswith("@POSTURE_"):
            text = text.replace(k, extra.get(k, ""))
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    for k, v in values.items():  # posture snippets may hold placeholders too
        text = text.replace("@%s@" % k, str(v))
    return text


class Proc:
    """A started process, stopped by pid."""

    def __init__(self, name, argv, env=None, stdout=None, cwd=None):
        self.name = name
        e = dict(os.environ)
        e.update(env or {})
        out = open(stdout, "ab") if stdout else subprocess.DEVNULL
        self.p = subprocess.Popen(["taskset", "-c", "0"] + argv, env=e, stdout=out,
                                  stderr=subprocess.DEVNULL, cwd=cwd, start_new_session=True)

    def tree(self):
        pids, todo = [], [self.p.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
        return pids

    def peak_rss_kib(self, field="VmHWM:"):
        """Peak RSS of the process tree (or, with field="VmRSS:", the RSS now)."""
        total = 0
        for pid in self.tree():
            try:
                for line in open("/proc/%d/status" % pid):
                    if line.startswith(field):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def cpu_seconds(self):
        """User + system CPU time of the process tree so far."""
        total = 0
        for pid in self.tree():
            try:
                f = open("/proc/%d/stat" % pid).read()
                fields = f[f.rindex(")") + 2:].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except (OSError, ValueError, IndexError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


def wait_ready(port, tls, deadline=15.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s, server_hostname="localhost")
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
            s.close()
            if data.startswith(b"HTTP/1.1 200"):
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


# Binaries of the rampart systems: "rampart" is this tree's release build; --baseline adds
# "baseline", another rampart binary (an earlier commit) run with the same configs.
# RAMPART_BENCH_BIN measures another build as "rampart".
RAMPART_BINS = {"rampart": os.environ.get("RAMPART_BENCH_BIN") or os.path.join(ROOT, "target/release/rampart")}


def start_system(name, scenario, v, work):
    # posture-redis: the posture scenario with rampart's limits in a shared Redis (on the
    # origin's core); the peers run their own local posture for comparison.
    posture = scenario in POSTURE_SCENARIOS
    binary = RAMPART_BINS.get(name)
    inc = {"nginx": "nginx.posture.inc", "haproxy": "haproxy.posture.inc", "caddy": "caddy.posture.inc"}
    if scenario == "static":
        if name == "nginx":
            path = os.path.join(work, "nginx-static.conf")
            open(path, "w").write(render("nginx-static.conf", v))
            return Proc(name, ["nginx", "-c", path])
        if name == "caddy":
            path = os.path.join(work, "Caddyfile.static")
            open(path, "w").write(render("Caddyfile.static", v))
            return Proc(name, ["caddy", "run", "--config", path, "--adapter", "caddyfile"],
                        env={"GOMAXPROCS": "1", "HOME": work, "XDG_DATA_HOME": work, "XDG_CONFIG_HOME": work})
        if binary:
            path = os.path.join(work, "rampart.toml")
            open(path, "w").write(render("rampart-static.toml", v))
            return Proc(name, [binary, "serve", "-c", path],
                        env={"RAMPART_LOG": "warn", "RAMPART_STATE_DIR": work})
        return None  # HAProxy does not serve files from a directory
    origin = "server 127.0.0.1:%d" % v["ORIGIN"]
    if name == "nginx":
        path = os.path.join(work, "nginx.conf")
        text = render("nginx.conf", v, inc["nginx"] if posture else None)
        if scenario == "tls-upstream":
            # TLS to the origin, verified, sessions reused (nginx's default).
            text = text.replace(origin + ";", "server 127.0.0.1:%d;" % v["ORIGIN_TLS"])
            text = text.replace("proxy_pass http://origin;", "proxy_pass https://origin; proxy_ssl_verify on; "
                                "proxy_ssl_trusted_certificate %s; proxy_ssl_name localhost; "
                                "proxy_ssl_server_name on;" % v["CERT"])
        if scenario == "grpc":
            text = text.replace(origin + ";", "server 127.0.0.1:%d;" % v["ORIGIN_H2"])
            text = text.replace("proxy_pass http://origin;", "grpc_pass grpc://origin;")
        open(path, "w").write(text)
        return Proc(name, ["nginx", "-c", path])
    if name == "haproxy":
        path = os.path.join(work, "haproxy.cfg")
        text = render("haproxy.cfg", v, inc["haproxy"] if posture else None)
        horigin = "server o1 127.0.0.1:%d" % v["ORIGIN"]
        if scenario == "tls-upstream":
            text = text.replace(horigin, "server o1 127.0.0.1:%d ssl verify required ca-file %s sni str(localhost)"
                                % (v["ORIGIN_TLS"], v["CERT"]))
        if scenario == "grpc":
            text = text.replace(horigin, "server o1 127.0.0.1:%d proto h2" % v["ORIGIN_H2"])
        open(path, "w").write(text)
        return Proc(name, ["haproxy", "-db", "-f", path], stdout=os.path.join(work, "haproxy.access.log"))
    if name == "caddy" and scenario in ("tls-upstream", "grpc"):
        return None  # not configured for these two rows
    if name == "caddy":
        path = os.path.join(work, "Caddyfile")
        open(path, "w").write(render("Caddyfile", v, inc["caddy"] if posture else None))
        return Proc(name, ["caddy", "run", "--config", path, "--adapter", "caddyfile"],
                    env={"GOMAXPROCS": "1", "HOME": work, "XDG_DATA_HOME": work, "XDG_CONFIG_HOME": work})
    if binary:
        tls = scenario in TLS_SCENARIOS
        path = os.path.join(work, "rampart.toml")
        conf = "rampart-posture.toml" if posture else "rampart-tls.toml" if tls else "rampart-plain.toml"
        text = render(conf, v)
        if scenario in ("posture-redis", "posture-lease"):
            text += '\n[state]\nbackend = "redis"\nredis = "redis://127.0.0.1:%d"\n' % v["REDIS"]
        if scenario == "posture-lease":
            text = text.replace('key = "ip"\n', 'key = "ip"\nlease = 100\n')
        if scenario == "tls-upstream":
            text = text.replace('servers = ["127.0.0.1:%d"]' % v["ORIGIN"],
                                'servers = ["https://127.0.0.1:%d"]\ntls = { ca = "%s" }' % (v["ORIGIN_TLS"], v["CERT"]))
        if scenario == "grpc":
            text = text.replace('servers = ["127.0.0.1:%d"]' % v["ORIGIN"],
                                'servers = ["127.0.0.1:%d"]\nprotocol = "h2"' % v["ORIGIN_H2"])
        open(path, "w").write(text)
        return Proc(name, [binary, "serve", "-c", path],
                    env={"RAMPART_LOG": "warn", "RAMPART_STATE_DIR": work})
    raise ValueError(name)


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return None
    n = float(m.group(1))
    return {"us": n / 1000, "ms": n, "s": n * 1000}[m.group(2)]


def mbytes(text):
    m = re.match(r"([\d.]+)([KMG]?B)", text)
    if not m:
        return None
    return float(m.group(1)) * {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}[m.group(2)]


def run_wrk(url, seconds, conns=64, close=False):
    argv = ["taskset", "-c", "1", "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    out = subprocess.run(argv + [url], capture_output=True, text=True).stdout
    r = {}
    for line in out.splitlines():
        p = line.split()
        if "requests in" in line:
            r["requests"] = int(p[0])
        elif line.startswith("Requests/sec:"):
            r["rps"] = float(p[1])
        elif line.startswith("Transfer/sec:"):
            r["mbps"] = mbytes(p[1])
        elif p and p[0] == "50%":
            r["p50"] = ms(p[1])
        elif p and p[0] == "99%":
            r["p99"] = ms(p[1])
        elif "Non-2xx" in line or "Socket errors" in line:
            r["errors"] = line.strip()
    return r


def h2load_max(out):
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    return ms(m.group(2)) if m else None


def h2load_argv(url, grpc=None):
    argv = ["taskset", "-c", "1", "h2load", "-c32", "-m10", url]
    if grpc:
        # A gRPC-shaped unary call: POST, application/grpc, TE: trailers, one framed message.
        body = os.path.join(grpc, "grpc-request.bin")
        open(body, "wb").write(b"\0\0\0\0\5hello")
        argv[-1:-1] = ["-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers"]
    return argv


def h2_cold_burst(url, grpc=None):
    """The slowest answer of a burst on the fresh proxy, one request per stream (32
    connections x 10 streams): the start-up's cost, reported apart. It runs before the
    timed run and its CPU count, so that run's max latency is the steady state's (the
    start-up's varied 10-60 ms between runs of one system)."""
    argv = h2load_argv(url, grpc)
    out = subprocess.run(argv[:-1] + ["-n320", url], capture_output=True, text=True).stdout
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    return ms(m.group(2)) if m else None


def run_h2load(url, seconds, grpc=None):
    argv = h2load_argv(url, grpc)
    argv[-1:-1] = ["-D", str(seconds)]
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    r = {}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s, ([\d.]+)([KMG]?B)/s", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out)
    if m:
        r["requests"] = int(m.group(2))
    if m and int(m.group(3)) > 0:
        r["errors"] = "%s failed" % m.group(3)
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        r["p50"] = ms(m.group(3))  # h2load gives mean, not p50
        r["p99"] = ms(m.group(2))  # and max, not p99
    return r


def run_idle(port, count):
    client = subprocess.Popen(["taskset", "-c", "1", sys.executable, os.path.join(HERE, "idle.py"),
                               str(port), str(count)], stdout=subprocess.PIPE, text=True)
    line = client.stdout.readline().strip()
    return client, line


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", 10)))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", 3)))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--baseline", help="another rampart binary, run as system 'baseline'")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.md"))
    args = ap.parse_args()
    scenarios = args.scenarios.split(",")
    # config-size: instructions per request by config size (callgrind), not a load run.
    config_size = "config-size" in scenarios
    scenarios = [sc for sc in scenarios if sc != "config-size"]
    if args.baseline:
        RAMPART_BINS["baseline"] = os.path.abspath(args.baseline)
    systems = [s for s in args.systems.split(",") if s == "nginx" or shutil.which(s) or s in RAMPART_BINS]

    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    work = tempfile.mkdtemp(prefix="rampart-bench-")
    os.chmod(work, 0o755)  # nginx workers run as an unprivileged user and read 64k.bin
    v = {"WORK": work, "ORIGIN": free_port(), "ORIGIN_TLS": free_port(), "ORIGIN_H2": free_port(),
         "HTTP": free_port(), "TLS": free_port(),
         "BODY100": "x" * 100, "CERT": os.path.join(work, "cert.pem"), "KEY": os.path.join(work, "key.pem"),
         "CERTKEY": os.path.join(work, "certkey.pem")}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE",
                    "-keyout", v["KEY"], "-out", v["CERT"]], check=True, capture_output=True)
    open(v["CERTKEY"], "w").write(open(v["CERT"]).read() + open(v["KEY"]).read())
    open(os.path.join(work, "64k.bin"), "wb").write(b"y" * 65536)
    site = os.path.join(work, "site")
    os.makedirs(os.path.join(site, "assets"))
    open(os.path.join(site, "index.html"), "w").write("<!doctype html><title>bench</title>" + "<p>static</p>" * 100)
    open(os.path.join(site, STATIC_FILE.lstrip("/")), "w").write(("function f(){return %d}\n" % 7) * 364)
    for d in (site, os.path.join(site, "assets")):
        os.chmod(d, 0o755)  # nginx's workers read it as an unprivileged user
    open(os.path.join(work, "origin.conf"), "w").write(render("origin.nginx.conf", v))
    origin = Proc("origin", ["nginx", "-c", os.path.join(work, "origin.conf")])
    redis = None
    if "posture-redis" in scenarios or "posture-lease" in scenarios:
        v["REDIS"] = free_port()
        redis = Proc("redis", ["redis-server", "--port", str(v["REDIS"]), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"])
    results = []  # (scenario, system, rep, dict)
    try:
        if not wait_ready(v["ORIGIN"], False):
            sys.exit("origin did not start")
        http = "http://127.0.0.1:%d" % v["HTTP"]
        https = "https://localhost:%d" % v["TLS"]
        for scenario in scenarios:
            for rep in range(args.reps):
                for system in systems:
                    proc = start_system(system, scenario, v, work)
                    if proc is None:
                        continue
                    tls = scenario in TLS_SCENARIOS
                    port = v["TLS"] if tls else v["HTTP"]
                    if not wait_ready(port, tls):
                        print("%s did not start for %s" % (system, scenario), file=sys.stderr)
                        proc.stop()
                        continue
                    cold = None
                    if scenario == "h2":
                        cold = h2_cold_burst(https + "/")
                    elif scenario == "grpc":
                        cold = h2_cold_burst(https + "/bench.Echo/Unary", grpc=work)
                    cpu0 = proc.cpu_seconds()
                    if scenario == "plain":
                        r = run_wrk(http + "/", args.seconds)
                    elif scenario in ("tls",) + POSTURE_SCENARIOS:
                        r = run_wrk(https + "/", args.seconds)
                    elif scenario == "h2":
                        r = run_h2load(https + "/", args.seconds)
                    elif scenario == "tls-upstream":
                        r = run_wrk(https + "/", args.seconds)
                    elif scenario == "grpc":
                        r = run_h2load(https + "/bench.Echo/Unary", args.seconds, grpc=work)
                    elif scenario == "static":
                        r = run_wrk(http + STATIC_FILE, args.seconds)
                    elif scenario == "large":
                        r = run_wrk(http + "/64k", args.seconds)
                    elif scenario == "new-conns":
                        r = run_wrk(https + "/", args.seconds, close=True)
                    elif scenario == "idle":
                        start = proc.peak_rss_kib("VmRSS:")
                        client, line = run_idle(v["HTTP"], args.idle_conns)
                        time.sleep(1)
                        r = {"held": line, "start": start}
                        client.terminate()
                        client.wait()
                    if cold is not None:
                        r["cold_max"] = cold
                    if r.get("requests"):
                        # The proxy's own CPU per request: much steadier than req/s on a
                        # shared machine, since it does not depend on how much CPU it got.
                        r["cpu_us"] = (proc.cpu_seconds() - cpu0) * 1e6 / r["requests"]
                    r["rss"] = proc.peak_rss_kib()
                    proc.stop()
                    results.append((scenario, system, rep, r))
                    print("%-9s %-8s rep %d: %s" % (scenario, system, rep + 1, r), file=sys.stderr, flush=True)
    finally:
        origin.stop()
        if redis:
            redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    report = render_report(results, scenarios, systems, args)
    if config_size and "rampart" in systems:
        cg = subprocess.run([sys.executable, os.path.join(HERE, "callgrind.py"),
                             "--binary", RAMPART_BINS["rampart"]],
                            check=True, capture_output=True, text=True).stdout
        report += ("\n## Config size (rampart, callgrind instructions per plain proxied GET)\n\n"
                   "1,000 host routes (the request's host is the last), 1,000 path-only routes "
                   "(the request falls through to the catch-all), 0/1/10 per-IP limits "
                   "(bench/callgrind.py).\n\n" + cg)
    print(report)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    open(args.out, "w").write(report)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=0):
    if x is None:
        return "n/a"
    return ("{:,.%df}" % digits).format(x)


def render_report(results, scenarios, systems, args):
    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    out = ["# rampart benchmark", "",
           "%d cores, %s, %s; %ds per run, %d runs per system, interleaved; origin and proxy on CPU 0, load on CPU 1."
           % (os.cpu_count(), cpu, platform.platform(), args.seconds, args.reps), "",
           "Medians with the min-max spread. Ratios are to nginx in the same run: only ratios "
           "within one run mean anything on a shared machine. Proxy CPU per request is the "
           "process tree's user + system time over the run divided by the requests served "
           "(10 ms clock ticks): the cost of one request whatever share of the core it got.", ""]
    for sc in scenarios:
        rows = [(s, [r for (c, sy, _, r) in results if c == sc and sy == s]) for s in systems]
        if not any(rs for _, rs in rows):
            continue
        out.append("## %s" % sc)
        out.append("")
        if sc == "idle":
            out.append("| system | peak RSS holding %d idle keep-alive connections | at start | per connection above start | ratio to nginx (peak) |" % args.idle_conns)
            out.append("|---|---|---|---|---|")
            base = med([r["rss"] for r in dict(rows).get("nginx", [])])
            for s, rs in rows:
                rss = med([r["rss"] for r in rs])
                start = med([r["start"] for r in rs if "start" in r])
                held = rs[0].get("held", "") if rs else ""
                per = (rss - start) * 1024 / args.idle_conns if rss and start else None
                ratio = rss / base if rss and base else None
                out.append("| %s | %s MiB (%s) | %s MiB | %s KiB | %s |" % (
                    s, fmt(rss / 1024 if rss else None, 1), held, fmt(start / 1024 if start else None, 1),
                    fmt(per / 1024 if per else None, 2), fmt(ratio, 2)))
            out.append("")
            continue
        key = "mbps" if sc == "large" else "rps"
        unit = "MB/s" if sc == "large" else ("handshakes/s" if sc == "new-conns" else "req/s")
        h2 = sc in ("h2", "grpc")
        lat = "mean / max ms (h2load, after the burst)" if h2 else "p50 / p99 ms"
        extra = " | expresses" if sc.startswith("posture") else ""
        if h2:
            extra = " | cold 320-request burst: max ms"
        out.append("| system | median %s (min-max) | %s | peak RSS MiB | ratio to nginx | proxy CPU µs/request (to nginx)%s |" % (unit, lat, extra))
        out.append("|---|---|---|---|---|---|" + ("---|" if extra else ""))
        base = med([r.get(key) for r in dict(rows).get("nginx", [])])
        base_cpu = med([r.get("cpu_us") for r in dict(rows).get("nginx", [])])
        for s, rs in rows:
            vals = [r.get(key) for r in rs if r.get(key) is not None]
            m = med(vals)
            spread = "%s-%s" % (fmt(min(vals)), fmt(max(vals))) if vals else ""
            p50 = med([r.get("p50") for r in rs])
            p99 = med([r.get("p99") for r in rs])
            rss = med([r.get("rss") for r in rs])
            ratio = m / base if m and base else None
            cpu = med([r.get("cpu_us") for r in rs])
            cpu_text = "%s (%s)" % (fmt(cpu, 1), fmt(cpu / base_cpu, 2)) if cpu and base_cpu else fmt(cpu, 1)
            errs = sorted({r["errors"] for r in rs if r.get("errors")})
            note = (" (%s)" % "; ".join(errs)) if errs else ""
            row = "| %s | %s (%s)%s | %s / %s | %s | %s | %s" % (s, fmt(m, 1 if sc == "large" else 0), spread, note,
                                                           fmt(p50, 2), fmt(p99, 2), fmt(rss / 1024 if rss else None, 1),
                                                           fmt(ratio, 2), cpu_text)
            if h2:
                row += " | %s" % fmt(med([r.get("cold_max") for r in rs]), 2)
            elif extra:
                row += " | %s" % POSTURE_NOTES.get(s, "")
            out.append(row + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
