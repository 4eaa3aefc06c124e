"""Holds N idle SMTP sessions open against a server and reports its memory per session.

    python3 idle.py [--starttls] PORT PID N [TIMEOUT]

Reads the server's VmRSS (from /proc/PID/status), then opens N connections to
127.0.0.1:PORT (at most 200 handshakes in flight), reads each greeting and answers EHLO,
waits for the server to settle, reads VmRSS again with every session open and idle, and
closes them all. With --starttls each session also runs STARTTLS (any certificate
accepted) and EHLO again before it idles (RFC 3207 §4.2). Prints one line:

    idle N=<opened> before_kib=<a> after_kib=<b> per_conn_kib=<(b-a)/opened>

Exits 1 if fewer than N sessions could be opened (the line is still printed), 2 when
TIMEOUT seconds (default 120) run out first.
"""
import asyncio
import ssl
import sys
import time

STARTTLS = "--starttls" in sys.argv
ARGS = [a for a in sys.argv[1:] if a != "--starttls"]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def reply(reader):
    """Reads one (possibly multi-line) reply; returns its code."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed by the server")
        if line[3:4] != b"-":
            return int(line[:3])


async def open_session(port, gate, held, failures):
    async with gate:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as e:
            failures.append(repr(e))
            return
        try:
            if await reply(reader) != 220:
                raise ConnectionError("no 220 greeting")
            writer.write(b"EHLO idle.example\r\n")
            if await reply(reader) != 250:
                raise ConnectionError("EHLO refused")
            if STARTTLS:
                writer.write(b"STARTTLS\r\n")
                if await reply(reader) != 220:
                    raise ConnectionError("STARTTLS refused")
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                await writer.start_tls(context)
                writer.write(b"EHLO idle.example\r\n")
                if await reply(reader) != 250:
                    raise ConnectionError("EHLO after STARTTLS refused")
        except (OSError, ConnectionError, ValueError) as e:
            failures.append(repr(e))
            writer.close()
            return
        held.append(writer)


async def settle(pid, limit=5.0):
    """Waits until VmRSS stops moving (or `limit` seconds)."""
    last, end = rss_kib(pid), time.monotonic() + limit
    while time.monotonic() < end:
        await asyncio.sleep(0.5)
        now = rss_kib(pid)
        if now == last:
            return now
        last = now
    return last


async def main():
    port, pid, n = int(ARGS[0]), int(ARGS[1]), int(ARGS[2])
    before = await settle(pid)
    gate = asyncio.Semaphore(200)
    held, failures = [], []
    await asyncio.gather(*(open_session(port, gate, held, failures) for _ in range(n)))
    after = await settle(pid)
    opened = len(held)
    per = (after - before) / opened if opened else float("nan")
    print(f"idle N={opened} before_kib={before} after_kib={after} per_conn_kib={per:.2f}")
    if failures:
        print(f"{len(failures)} sessions failed, first: {failures[0]}", file=sys.stderr)
    for w in held:
        w.close()
    await asyncio.sleep(0.2)
    return 0 if opened == n else 1


if __name__ == "__main__":
    timeout = float(ARGS[3]) if len(ARGS) > 3 else 120.0
    try:
        sys.exit(asyncio.run(asyncio.wait_for(main(), timeout)))
    except asyncio.TimeoutError:
        print(f"idle: timed out after {timeout} s", file=sys.stderr)
        sys.exit(2)
