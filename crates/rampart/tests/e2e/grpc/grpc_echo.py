"""A gRPC server for rampart's tests (grpcio, raw bytes, no generated code).

test.Echo: Unary (echoes the message and the X-Forwarded-For it saw, sets a trailer),
ServerStream (N messages), ClientStream (joins the messages), Bidi (echoes each message as
it arrives), Slow and Slower (answer after 3 s), Fail (NOT_FOUND with a message), Peer (the
caller's address, after 0.5 s: which connection a call came on). The standard
grpc.health.v1 service answers SERVING, or NOT_SERVING while a file `not_serving` exists
in the working directory. `python -m grpc_echo [CERT KEY]` serves TLS with that pair,
plain HTTP/2 without; the address is printed to stderr.
"""

import os
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def unary(req, ctx):
    md = dict(ctx.invocation_metadata())
    ctx.set_trailing_metadata((("x-trailer", "t-" + md.get("x-call", "none")),))
    seen = f" xff={md.get('x-forwarded-for', '-')} timeout={'yes' if ctx.time_remaining() else 'no'}"
    return b"unary:" + req + seen.encode()


def server_stream(req, ctx):
    for i in range(int(req.decode())):
        yield b"item-%d" % i


def client_stream(requests, ctx):
    return b"+".join(requests)


def bidi(requests, ctx):
    for m in requests:
        yield b"echo:" + m


def slow(req, ctx):
    time.sleep(3)
    return b"late"


def peer(req, ctx):
    if req != b"now":
        time.sleep(0.5)  # held open, so that concurrent calls need several streams
    return ctx.peer().encode()


def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


def main():
    handler = grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
            "Slow": grpc.unary_unary_rpc_method_handler(slow),
            "Slower": grpc.unary_unary_rpc_method_handler(slow),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Peer": grpc.unary_unary_rpc_method_handler(peer),
        },
    )
    options = [("grpc.max_concurrent_streams", 1000)]
    if os.path.exists("max_age_ms"):
        # Connections end after this age (GOAWAY, then closed after a grace period), as a
        # server rotating its connections does.
        age = int(open("max_age_ms").read())
        options += [("grpc.max_connection_age_ms", age), ("grpc.max_connection_age_grace_ms", age)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=200), options=options)
    server.add_generic_rpc_handlers((handler,))
    hs = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(hs, server)
    if len(sys.argv) == 3:
        with open(sys.argv[1], "rb") as c, open(sys.argv[2], "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def watch():
        while True:
            serving = not os.path.exists("not_serving")
            hs.set(
                "",
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING,
            )
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    print(f"serving on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
