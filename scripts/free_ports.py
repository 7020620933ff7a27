#!/usr/bin/env python3
"""Prints N free TCP ports on 127.0.0.1, for the test and benchmark scripts.

Ports come from 20000-32767, below Linux's ephemeral range (32768-60999), so
an outgoing connection made meanwhile cannot take one between this check and
the server's bind. Usage: scripts/free_ports.py N
"""
import random
import socket
import sys

wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 1
found = []
for port in random.sample(range(20000, 32768), 2000):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    found.append(port)
    if len(found) == wanted:
        break
print(*found)
