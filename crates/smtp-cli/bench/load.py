"""A simple load generator against `smtp serve` (stand-in for Postfix's smtp-source).

    python3 load.py PORT [COUNT] [CONCURRENCY] [SIZE]

Sends COUNT messages of SIZE bytes (default 20000, 20, 1024) over CONCURRENCY
connections, reusing each connection; MAIL, RCPT and DATA are pipelined (RFC 2920).
Prints `sent N messages in S s (R msg/s)` and the failure count.
"""
import asyncio
import sys
import time


async def reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return int(line[:3])


async def worker(port, count, body, failures):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reply(reader)
    writer.write(b"EHLO load.example\r\n")
    await reply(reader)
    for i in range(count):
        writer.write(b"MAIL FROM:<load@example.org>\r\nRCPT TO:<sink@example.org>\r\nDATA\r\n")
        codes = [await reply(reader) for _ in range(3)]
        if codes != [250, 250, 354]:
            failures[0] += 1
            writer.write(b"RSET\r\n")
            await reply(reader)
            continue
        writer.write(body)
        if await reply(reader) != 250:
            failures[0] += 1
    writer.write(b"QUIT\r\n")
    await reply(reader)
    writer.close()


async def main():
    port = int(sys.argv[1])
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    conc = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
    line = b"x" * 76 + b"\r\n"
    text = b"Subject: load\r\n\r\n" + line * max(1, size // len(line))
    body = text + b".\r\n"
    failures = [0]
    per = [count // conc + (1 if i < count % conc else 0) for i in range(conc)]
    start = time.monotonic()
    await asyncio.gather(*(worker(port, n, body, failures) for n in per))
    secs = time.monotonic() - start
    print(f"sent {count} messages in {secs:.2f} s ({count / secs:.0f} msg/s), {failures[0]} failures")


if __name__ == "__main__":
    asyncio.run(main())
