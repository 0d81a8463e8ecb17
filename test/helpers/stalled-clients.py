"""Opens N CONNECT tunnels through a proxy and then stops reading them: clients that stall.

Each socket gets a small receive buffer and a small MSS before it connects, so the kernel holds
little for it (on loopback a socket that can still autotune holds megabytes), and what the
destination sends piles up where the test can see it: in the proxy. Prints "ready <n200>" once every
tunnel has its answer, then waits for stdin to close and exits. Only 127.0.0.1.
Usage: stalled-clients.py PORT AUTHORITY N
"""
import selectors
import socket
import sys

port, authority, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
request = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
sel = selectors.DefaultSelector()
heads = {}
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1024)
    s.connect(("127.0.0.1", port))
    s.sendall(request)
    s.setblocking(False)
    socks.append(s)
    heads[s] = b""
    sel.register(s, selectors.EVENT_READ)

ok = 0
pending = n
while pending:
    for key, _ in sel.select(timeout=30):
        s = key.fileobj
        # Read one byte at a time: never past the answer's head, so the tunnel's bytes stay unread.
        b = s.recv(1)
        if not b:
            sel.unregister(s)
            pending -= 1
            continue
        heads[s] += b
        if heads[s].endswith(b"\r\n\r\n"):
            sel.unregister(s)
            pending -= 1
            if heads[s].startswith(b"HTTP/1.1 200"):
                ok += 1
print(f"ready {ok}", flush=True)
sys.stdin.read()
