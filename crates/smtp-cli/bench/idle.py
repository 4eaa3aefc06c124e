"""Memory per idle connection of a running `smtp serve`.

    python3 idle.py PORT PID [N]

Opens N (default 2000) connections to 127.0.0.1:PORT, reads each greeting and answers
EHLO, then compares the server's VmRSS (from /proc/PID/status) before and after.
"""
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def read_reply(s):
    data = b""
    while True:
        data += s.recv(4096)
        lines = data.split(b"\r\n")
        if len(lines) > 1 and lines[-2][3:4] == b" ":
            return data


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    time.sleep(0.5)
    before = rss_kib(pid)
    conns = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        read_reply(s)
        s.sendall(b"EHLO client.example\r\n")
        read_reply(s)
        conns.append(s)
    time.sleep(1.0)
    after = rss_kib(pid)
    per = (after - before) / n
    print(f"{n} idle connections: RSS {before} KiB -> {after} KiB, {per:.2f} KiB per connection")
    for s in conns:
        s.close()


if __name__ == "__main__":
    main()
