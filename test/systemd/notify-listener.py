#!/usr/bin/env python3
"""Stands in for systemd's notification socket: binds an AF_UNIX datagram socket at argv[1] and
prints one JSON line per datagram received. On a datagram with READY=1 it first tries a TCP
connection to each port in argv[2:] on 127.0.0.1 (the gateway's proxy and admin ports), at once,
so the line says whether those listeners accepted connections at the moment systemd would have
let `systemctl start` return."""
import json
import socket
import sys

path, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
print(json.dumps({"bound": path}), flush=True)
while True:
    data = sock.recv(65536).decode("utf-8", "replace")
    fields = dict(line.split("=", 1) for line in data.split("\n") if "=" in line)
    accepted = {}
    if fields.get("READY") == "1":
        for port in ports:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                accepted[str(port)] = True
            except OSError:
                accepted[str(port)] = False
    print(json.dumps({"fields": fields, "accepted": accepted}), flush=True)
