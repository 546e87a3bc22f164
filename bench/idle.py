#!/usr/bin/env python3
"""Opens N keep-alive connections to 127.0.0.1:PORT, completes one request on each, prints
"N held", then holds them until terminated. Used by bench.py's idle scenario."""

import asyncio
import resource
import sys


async def one(port, sem):
    async with sem:
        return await asyncio.wait_for(connect(port), timeout=10)


async def connect(port):
    if True:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        if length:
            await r.readexactly(length)
        return r, w


async def main():
    port, count = int(sys.argv[1]), int(sys.argv[2])
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sem = asyncio.Semaphore(200)
    conns = await asyncio.gather(*(one(port, sem) for _ in range(count)), return_exceptions=True)
    held = [c for c in conns if not isinstance(c, BaseException)]
    print("%d held" % len(held), flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
