"""A gRPC client for rampart's tests: every kind of call to test.Echo through the edge.

`python grpc_calls.py HOST:PORT CA_FILE` (TLS, the edge's certificate from CA_FILE) prints
one JSON object with what each call returned.
"""

import json
import queue
import sys
import time

import grpc


def main():
    target, ca = sys.argv[1], sys.argv[2]
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(f.read())
    channel = grpc.secure_channel(target, creds)
    out = {}

    if sys.argv[3:] == ["peers"]:
        # 120 calls at once: more streams than one upstream connection is given.
        call = channel.unary_unary("/test.Echo/Peer")
        pending = [call.future(b"x", timeout=20) for _ in range(120)]
        peers = [p.result().decode() for p in pending]
        print(json.dumps({"calls": len(peers), "connections": len(set(peers))}))
        return

    if sys.argv[3:] == ["sequential"]:
        # One call every 50 ms for 2 s, each answer with the upstream connection it came on.
        call = channel.unary_unary("/test.Echo/Peer")
        peers, failed = [], []
        for _ in range(40):
            try:
                peers.append(call(b"now", timeout=10).decode())
            except grpc.RpcError as e:
                failed.append("%s %s" % (e.code().name, e.details()))
            time.sleep(0.05)
        print(json.dumps({"calls": len(peers), "connections": len(set(peers)), "failed": failed}))
        return

    resp, call = channel.unary_unary("/test.Echo/Unary").with_call(
        b"hello", metadata=(("x-call", "1"),), timeout=10
    )
    out["unary"] = resp.decode()
    out["unary_trailer"] = dict(call.trailing_metadata() or ()).get("x-trailer")
    out["unary_headers"] = sorted(k for k, _ in (call.initial_metadata() or ()))

    out["server_stream"] = [
        m.decode() for m in channel.unary_stream("/test.Echo/ServerStream")(b"3", timeout=10)
    ]
    out["client_stream"] = channel.stream_unary("/test.Echo/ClientStream")(
        iter([b"a", b"b", b"c"]), timeout=10
    ).decode()

    # Each message is sent only after the echo of the one before arrived: a proxy that
    # buffered either direction would stall this until the deadline.
    q = queue.Queue()
    q.put(b"m0")

    def messages():
        for _ in range(3):
            yield q.get(timeout=10)

    echoes = []
    for m in channel.stream_stream("/test.Echo/Bidi")(messages(), timeout=10):
        echoes.append(m.decode())
        if len(echoes) < 3:
            q.put(b"m%d" % len(echoes))
    out["bidi"] = echoes

    # Messages larger than every flow-control window on the way (64 KiB by default), in
    # both directions at once: 3 MiB each way, in 4 messages of different sizes.
    big = [bytes([65 + i]) * (n << 10) for i, n in enumerate((3000, 1, 64, 700))]
    got = list(channel.stream_stream("/test.Echo/Bidi")(iter(big), timeout=20))
    out["large"] = [len(m) for m in got] == [len(m) + 5 for m in big] and all(
        g == b"echo:" + m for g, m in zip(got, big)
    )

    started = time.monotonic()
    try:
        channel.unary_unary("/test.Echo/Slow")(b"x", timeout=0.5)
        out["deadline"] = "none"
    except grpc.RpcError as e:
        out["deadline"] = e.code().name
    out["deadline_ms"] = int((time.monotonic() - started) * 1000)

    # The edge's own response_timeout (300ms on this route) passes first: rampart answers.
    try:
        channel.unary_unary("/test.Echo/Slower")(b"x", timeout=10)
        out["edge_timeout"] = "none"
    except grpc.RpcError as e:
        out["edge_timeout"] = [e.code().name, e.details()]

    try:
        channel.unary_unary("/test.Echo/Fail")(b"x", timeout=10)
        out["fail"] = "none"
    except grpc.RpcError as e:
        out["fail"] = [e.code().name, e.details()]

    try:
        channel.unary_unary("/test.Locked/Call")(b"x", timeout=10)
        out["refused"] = "none"
    except grpc.RpcError as e:
        out["refused"] = [e.code().name, e.details()]

    print(json.dumps(out))


if __name__ == "__main__":
    main()
