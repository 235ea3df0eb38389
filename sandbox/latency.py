"""A network delay in front of the sandbox's servers: a TCP relay that holds every chunk for half
the round-trip time in each direction, so each SSH round trip (banner, key exchange, auth, each
channel request) costs `rtt_ms` more, as a hospital's WAN link would; throughput is not limited.

    python -m sandbox.latency --rtt-ms 30 --map LISTEN_PORT=TARGET_PORT [...]

Prints one line `{"LISTEN_PORT": TARGET_PORT, ...}` once listening; stopped by its PID (SIGTERM).
The bench (bench/pool_bench.py) puts it in front of the sandbox's SSH hosts and points its site
files' host ports (and a copy of known_hosts) at it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

CHUNK = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Forward what `reader` gives to `writer`, each chunk `delay_s` after it arrived, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)   # the simulated propagation delay itself
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((loop.time() + delay_s, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((loop.time() + delay_s, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


def _handler(target_port: int, delay_s: float):
    async def handle(c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            c_writer.close()
            return
        try:
            await asyncio.gather(_pipe(c_reader, s_writer, delay_s), _pipe(s_reader, c_writer, delay_s))
        except asyncio.CancelledError:   # the relay is stopping
            pass
        finally:
            for w in (c_writer, s_writer):
                w.close()
    return handle


async def serve(mapping: list[tuple[int, int]], rtt_ms: float) -> None:
    delay_s = rtt_ms / 2000.0
    servers = [await asyncio.start_server(_handler(t, delay_s), "127.0.0.1", lp) for lp, t in mapping]
    ports = {s.sockets[0].getsockname()[1]: t for s, (_, t) in zip(servers, mapping)}
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtt-ms", type=float, default=30.0)
    ap.add_argument("--map", action="append", default=[], help="LISTEN_PORT=TARGET_PORT (0: any free port)")
    args = ap.parse_args(argv)
    mapping = [(int(lp), int(tp)) for lp, tp in (m.split("=", 1) for m in args.map)]
    asyncio.run(serve(mapping, args.rtt_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
