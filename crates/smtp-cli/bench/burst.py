"""Open N connections to HOST:PORT as fast as possible, then read each one's first line
(20 s at most). Prints how many got a 220 greeting, a 421, and nothing (time-out or
reset): every client over capacity must still get a 421.

    smtp serve --io blocking --listen 127.0.0.1:2601 --no-tls --discard --max-connections-per-ip 0
    python3 crates/smtp-cli/bench/burst.py 127.0.0.1 2601 5000

Under a low open-file limit: start the server from `sh -c 'ulimit -n 1024; exec smtp serve ...'`.
Loopback only."""
import socket, sys, time, selectors
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = []
t0 = time.time()
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect_ex((host, port))
    except OSError:
        pass
    socks.append(s)
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
got = {}
deadline = time.time() + 20
while len(got) < n and time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        s = key.fileobj
        try:
            data = s.recv(512)
        except OSError:
            data = b""
        got[s] = data
        sel.unregister(s)
greet = sum(1 for d in got.values() if d.startswith(b"220"))
busy = sum(1 for d in got.values() if d.startswith(b"421"))
print(f"{n} connects: {greet} greeted, {busy} got 421, {n - greet - busy} got nothing, {time.time()-t0:.1f} s")
