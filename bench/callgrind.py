#!/usr/bin/env python3
"""Instructions per request (callgrind) for rampart's plain proxied GET, by config size.

Instruction counts are stable on a shared machine where wall-clock rates are not. Each
variant runs rampart (release build) under `valgrind --tool=callgrind`; after WARM
keep-alive requests from this process (to the bench's origin, nginx) the counters are
zeroed, N more requests are sent and the counters dumped: instructions per request =
dumped total / N, with start-up, config compilation and shutdown left out. (Two whole
runs of N1 and N2 requests, differenced, were noisy by ±800 per request: aws-lc seeds
its entropy pool with jitter entropy, a loop whose length varies from run to run.)

Variants: 1 route; 1,000 routes by host (the request's host is the last one); 1,000
path-only routes (the request falls through to the catch-all, the worst case of a scan);
0 vs 1 vs 10 per-IP rate limits on the route; `[tracing] otlp` on (one span per request,
the exporter thread's work included).

Usage: bench/callgrind.py [--variants a,b] [--binary target/release/rampart]
Prints a Markdown table; bench/run --scenarios config-size calls it.
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WARM, N = 200, 2000

sys.path.insert(0, HERE)
from bench import free_port  # noqa: E402  (the benchmark's own, one place)

VARIANTS = ["1-route", "1000-host-routes", "1000-path-routes", "1-limit", "10-limits", "otlp"]


def config(variant, http, origin):
    head = (
        '[server]\nhttp = "127.0.0.1:%d"\nworkers = 1\n'
        '[upstreams.origin]\nservers = ["127.0.0.1:%d"]\n[logging]\naccess = "off"\n'
        % (http, origin)
    )
    routes = []
    limits = []
    host = "localhost"
    route_limit = ""
    if variant == "1000-host-routes":
        routes = ['[[routes]]\nhost = "h%d.example.com"\nupstream = "origin"\n' % i for i in range(999)]
        host = "h998.example.com"
    elif variant == "1000-path-routes":
        routes = ['[[routes]]\npath = "/p%d/"\nupstream = "origin"\n' % i for i in range(999)]
    elif variant in ("1-limit", "10-limits"):
        n = 1 if variant == "1-limit" else 10
        limits = ['[limits.l%d]\nrate = "1000000/s"\nburst = 1000000\nkey = "ip"\n' % i for i in range(n)]
        route_limit = "limit = [%s]\n" % ", ".join('"l%d"' % i for i in range(n))
    routes.append('[[routes]]\nupstream = "origin"\n' + route_limit)
    tail = ""
    if variant == "otlp":
        # Spans exported (to the origin nginx, which refuses the POST: the whole export
        # is done and counted, encoding and HTTP exchange included, on rampart's thread).
        tail = '[tracing]\notlp = "http://127.0.0.1:%d"\n' % origin
    return head + "".join(limits) + "".join(routes) + tail, host


def wait_port(port, deadline=60.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("port %d never opened" % port)


def load(port, host, n):
    """n keep-alive GETs on one connection, each answer read whole."""
    s = socket.create_connection(("127.0.0.1", port))
    req = ("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n" % host).encode()
    buf = b""
    for _ in range(n):
        s.sendall(req)
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head, buf = buf.split(b"\r\n\r\n", 1)
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise SystemExit("answer %s: %s" % (status, head[:300]))
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        while len(buf) < length:
            buf += s.recv(65536)
        buf = buf[length:]
    s.close()


def instructions(binary, variant, origin, n, work):
    """Instructions per request over n requests, counted from after a warm-up: the
    counters are zeroed once rampart has served WARM requests and dumped after n more, so
    start-up (config compilation, aws-lc's jitter-entropy seeding, whose length varies from
    run to run by ~1M instructions) and shutdown are not in the count."""
    http = free_port()
    text, host = config(variant, http, origin)
    path = os.path.join(work, "rampart-%s.toml" % variant)
    open(path, "w").write(text)
    out = os.path.join(work, "callgrind.%s" % variant)
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, binary, "serve", "-c", path],
        env=dict(os.environ, RAMPART_LOG="warn", RAMPART_STATE_DIR=work),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(http)
        load(http, host, WARM)
        subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
        load(http, host, n)
        subprocess.run(["callgrind_control", "--dump=measured", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    dumps = sorted(f for f in os.listdir(work) if f.startswith("callgrind.%s." % variant))
    if not dumps:
        raise SystemExit("no dump for " + variant)
    for line in open(os.path.join(work, dumps[0])):
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1]) / n
    raise SystemExit("no totals in " + dumps[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/rampart"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rampart-callgrind-")
    origin = free_port()
    conf = open(os.path.join(HERE, "conf/origin.nginx.conf")).read()
    conf = conf.replace("@ORIGIN@", str(origin)).replace("@WORK@", work).replace("@BODY100@", "x" * 100)
    # The origin's TLS and HTTP/2 listeners (the tls-upstream and grpc rows) are not used
    # here, but nginx starts only with a certificate for them.
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    conf = (conf.replace("@ORIGIN_TLS@", str(free_port())).replace("@ORIGIN_H2@", str(free_port()))
            .replace("@CERT@", cert).replace("@KEY@", key))
    open(os.path.join(work, "origin.conf"), "w").write(conf)
    open(os.path.join(work, "64k.bin"), "wb").write(b"\0" * 65536)
    nginx = subprocess.Popen(["nginx", "-c", os.path.join(work, "origin.conf")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_port(origin)
        for v in args.variants.split(","):
            per = instructions(args.binary, v, origin, N, work)
            rows.append((v, per))
            print("%-18s %8.0f instructions/request" % (v, per), file=sys.stderr, flush=True)
    finally:
        nginx.terminate()
        nginx.wait()
    base = dict(rows).get("1-route")
    print("| config | instructions / request | vs 1 route |")
    print("|---|---|---|")
    for v, per in rows:
        rel = "%+.1f %%" % (100.0 * (per - base) / base) if base else "–"
        print("| %s | %.0f | %s |" % (v, per, rel))


if __name__ == "__main__":
    main()
