"""Guess passwords for user `tim` against smtp serve from one address for SECS seconds,
as fast as it lets us, reconnecting after each session's limit. Counts 535 (a guess
checked) and 454 (refused unchecked, --max-auth-failures-per-ip).

    printf 'tim:tanstaaf\n' > users
    smtp serve --listen 127.0.0.1:2603 --no-tls --discard --auth-file users --allow-insecure-auth
    python3 crates/smtp-cli/bench/guess.py 127.0.0.1 2603 10

Loopback only."""
import base64, socket, sys, time
host, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
checked = refused = 0
end = time.time() + secs
while time.time() < end:
    s = socket.create_connection((host, port))
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO x\r\n")
    while True:
        l = f.readline()
        if l[3:4] != b"-":
            break
    closed = False
    while time.time() < end and not closed:
        tok = base64.b64encode(b"\0tim\0guess%d" % (checked + refused)).decode()
        s.sendall(f"AUTH PLAIN {tok}\r\n".encode())
        l = f.readline()
        if l.startswith(b"535"):
            checked += 1
        elif l.startswith(b"454"):
            refused += 1
        else:
            closed = True
        if l.startswith(b"421") or not l:
            closed = True
    s.close()
print(f"{secs:.0f} s: {checked} guesses checked ({checked/secs:.1f}/s), {refused} refused with 454")
