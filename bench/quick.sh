#!/usr/bin/env bash
# A quick side-by-side: rampart and nginx proxying the same nginx origin, plain HTTP/1.1 and
# TLS 1.3, one worker each. The origin and the proxy under test share CPU 0, wrk runs on
# CPU 1. Systems are interleaved (A B A B …) and each measurement is repeated.
# Issue 3 grows this into bench/run (Caddy, HAProxy, h2, posture, large, new-conns, idle).
#
# Usage: bench/quick.sh [seconds-per-run] [repetitions]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
REPS=${2:-3}
CONNS=64
WORK=$(mktemp -d /tmp/rampart-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

for bin in nginx wrk taskset openssl; do
  command -v "$bin" >/dev/null || { echo "missing $bin (apt-get install nginx-light wrk util-linux openssl)" >&2; exit 1; }
done
[ -x target/release/rampart ] || cargo build --release

# Ports: configurable, defaults in a quiet range.
ORIGIN=${ORIGIN_PORT:-19000}; NG_HTTP=${NG_HTTP_PORT:-19080}; NG_TLS=${NG_TLS_PORT:-19443}
RP_HTTP=${RP_HTTP_PORT:-19180}; RP_TLS=${RP_TLS_PORT:-19543}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null

BODY=$(head -c 100 /dev/zero | tr '\0' 'x')
cat > "$WORK/origin.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/origin.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$ORIGIN; location / { default_type text/plain; return 200 "$BODY"; } } }
CONF

SEC_HEADERS='
    add_header Content-Security-Policy "default-src '"'"'self'"'"'; frame-ancestors '"'"'none'"'"'; base-uri '"'"'self'"'"'; object-src '"'"'none'"'"'" always;
    add_header X-Content-Type-Options nosniff always;
    add_header X-Frame-Options DENY always;
    add_header Referrer-Policy strict-origin-when-cross-origin always;
    add_header Permissions-Policy "camera=(), microphone=(), geolocation=(), payment=(), usb=()" always;
    add_header Cross-Origin-Opener-Policy same-origin always;
    add_header Cross-Origin-Resource-Policy same-origin always;'
cat > "$WORK/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/nginx.pid; error_log /dev/null;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; server_tokens off;
  upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  ssl_protocols TLSv1.2 TLSv1.3; ssl_session_cache shared:SSL:10m;
  server { listen 127.0.0.1:$NG_HTTP; listen 127.0.0.1:$NG_TLS ssl http2;
    ssl_certificate $WORK/cert.pem; ssl_certificate_key $WORK/key.pem;
    add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    $SEC_HEADERS
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header Host \$host; proxy_set_header X-Real-IP \$remote_addr;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_hide_header X-Powered-By; } } }
CONF

# rampart: the same job. Plain and TLS need two instances (with [tls], http only redirects).
cat > "$WORK/rampart-http.toml" <<CONF
[server]
http = "127.0.0.1:$RP_HTTP"
workers = 1
[upstreams.origin]
servers = ["127.0.0.1:$ORIGIN"]
[[routes]]
upstream = "origin"
CONF
cat > "$WORK/rampart-tls.toml" <<CONF
[server]
https = "127.0.0.1:$RP_TLS"
workers = 1
[tls]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
[upstreams.origin]
servers = ["127.0.0.1:$ORIGIN"]
[[routes]]
upstream = "origin"
CONF

start() { taskset -c 0 "$@" >/dev/null 2>&1 & PIDS+=($!); }
start nginx -c "$WORK/origin.conf"
start nginx -c "$WORK/nginx.conf"
start env RAMPART_LOG=warn target/release/rampart serve -c "$WORK/rampart-http.toml"
start env RAMPART_LOG=warn target/release/rampart serve -c "$WORK/rampart-tls.toml"
sleep 1
for url in "http://127.0.0.1:$NG_HTTP/" "https://127.0.0.1:$NG_TLS/" "http://127.0.0.1:$RP_HTTP/" "https://127.0.0.1:$RP_TLS/"; do
  curl -sk -o /dev/null --fail "$url" || { echo "not answering: $url" >&2; exit 1; }
done

# wrk prints Requests/sec and the latency distribution; keep rps and p50/p99 in ms.
run() { # name url
  local out rps p50 p99
  out=$(taskset -c 1 wrk -t1 -c$CONNS -d${DUR}s --latency "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  echo "$1 $rps $(ms "$p50") $(ms "$p99")" >> "$WORK/results"
}
ms() { awk -v v="$1" 'BEGIN { n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'; }

for i in $(seq 1 "$REPS"); do
  run nginx-plain "http://127.0.0.1:$NG_HTTP/"
  run rampart-plain "http://127.0.0.1:$RP_HTTP/"
  run nginx-tls "https://127.0.0.1:$NG_TLS/"
  run rampart-tls "https://127.0.0.1:$RP_TLS/"
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| system | scenario | median req/s | p50 ms | p99 ms | ratio to nginx |"
echo "|---|---|---|---|---|---|"
for sc in plain tls; do
  base=$(awk -v k="nginx-$sc" '$1==k {print $2}' "$WORK/results" | median)
  for sys in nginx rampart; do
    k="$sys-$sc"
    rps=$(awk -v k="$k" '$1==k {print $2}' "$WORK/results" | median)
    p50=$(awk -v k="$k" '$1==k {print $3}' "$WORK/results" | median)
    p99=$(awk -v k="$k" '$1==k {print $4}' "$WORK/results" | median)
    ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN { printf "%.2f", a/b }')
    echo "| $sys | $sc | $rps | $p50 | $p99 | $ratio |"
  done
done
echo
echo "$(nproc) cores, $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ //'), ${DUR}s x $REPS runs each, $CONNS connections, wrk -t1"
