#!/usr/bin/env python3
"""The cost of a post-quantum (X25519MLKEM768) TLS 1.3 handshake against a classical
(X25519) one, on rampart, with nginx (OpenSSL 3.0: no ML-KEM) as the classical reference.

wrk and h2load link Debian's OpenSSL 3.0, which cannot offer ML-KEM, so the load comes
from `handshakes` (crates/rampart-test-support/examples/handshakes.rs, rustls on
aws-lc-rs) offering exactly one key share. Each system answers a fixed 200 (no upstream),
pinned to core 0; the client runs on core 1. Reported: handshakes/s and the server's own
CPU per handshake (from /proc), medians of the interleaved repetitions.

Usage: cargo build --release -p rampart --bin rampart --example handshakes -p rampart-test-support
       python3 bench/pq.py [--seconds 8] [--reps 3] [--concurrency 32]
"""
import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAMPART = os.path.join(ROOT, "target/release/rampart")
CLIENT = os.path.join(ROOT, "target/release/examples/handshakes")
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)


def start(system, work, port, cert, key):
    if system == "rampart":
        cfg = os.path.join(work, "rampart.toml")
        with open(cfg, "w") as f:
            f.write(
                '[server]\nhttps = "127.0.0.1:%d"\nworkers = 1\nmax_connections = 20000\n'
                '[tls]\ncert = "%s"\nkey = "%s"\n[logging]\naccess = "off"\n'
                '[[routes]]\nrespond = { status = 200, body = "ok" }\n' % (port, cert, key)
            )
        cmd = ["taskset", "-c", "0", RAMPART, "serve", "-c", cfg]
    else:
        cfg = os.path.join(work, "nginx.conf")
        with open(cfg, "w") as f:
            f.write(
                "worker_processes 1; daemon off; master_process off; pid %s/nginx.pid;\n"
                "error_log %s/nginx.error.log; worker_rlimit_nofile 20000;\n"
                "events { worker_connections 20000; }\n"
                "http { access_log off; ssl_protocols TLSv1.2 TLSv1.3;\n"
                " server { listen 127.0.0.1:%d ssl; ssl_certificate %s; ssl_certificate_key %s;\n"
                "  location / { return 200 ok; } } }\n" % (work, work, port, cert, key)
            )
        cmd = ["taskset", "-c", "0", "nginx", "-p", work, "-c", cfg]
    p = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def run(system, group, args, work, cert, key):
    port = free_port()
    proc = start(system, work, port, cert, key)
    try:
        time.sleep(0.5)
        cpu0 = cpu_seconds(proc.pid)
        out = subprocess.run(
            ["taskset", "-c", "1", CLIENT, "127.0.0.1:%d" % port, "bench.test", group,
             str(args.seconds), str(args.concurrency)],
            capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait()
    fields = dict(kv.split("=") for kv in out.split())
    n = int(fields["handshakes"])
    return float(fields["per_second"]), cpu * 1e6 / max(n, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rampart-pq-")
    cert, key = os.path.join(work, "cert.pem"), os.path.join(work, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=bench.test"], check=True, capture_output=True)
    cases = [("nginx", "x25519"), ("rampart", "x25519"), ("rampart", "x25519mlkem768")]
    results = {c: [] for c in cases}
    for _ in range(args.reps):
        for c in cases:
            results[c].append(run(c[0], c[1], args, work, cert, key))
    base_rate = statistics.median(r for r, _ in results[("nginx", "x25519")])
    base_cpu = statistics.median(c for _, c in results[("nginx", "x25519")])
    print("| system | key share | median handshakes/s (min-max) | ratio to nginx | server CPU µs/handshake (to nginx) |")
    print("|---|---|---|---|---|")
    for (system, group), rs in results.items():
        rates = [r for r, _ in rs]
        cpus = [c for _, c in rs]
        m, mc = statistics.median(rates), statistics.median(cpus)
        print("| %s | %s | %s (%s-%s) | %.2f | %.1f (%.2f) |" % (
            system, group, format(round(m), ","), format(round(min(rates)), ","),
            format(round(max(rates)), ","), m / base_rate, mc, mc / base_cpu))


if __name__ == "__main__":
    main()
