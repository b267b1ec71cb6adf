#!/usr/bin/env python3
"""Cost of fdatasync after appending, against after overwriting zeros
written ahead of the end (what tickd's journal thread does, see
docs/runs.md "Zeros ahead of the end").

Usage: scripts/fsync-probe.py [DIR] (default: $TMPDIR or /tmp; it must be
on a real disk). Writes RECORD bytes and fdatasyncs, COUNT times, both
ways, ROUNDS times alternating, and prints the latency of each.
"""
import os
import sys
import time

DIR = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("TMPDIR", "/tmp")
RECORD, COUNT, ROUNDS, AHEAD = 3000, 800, 3, 4 << 20


def probe(ahead):
    path = os.path.join(DIR, "fsync-probe.%d" % os.getpid())
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        written, end, took = 0, 0, []
        for _ in range(COUNT):
            if ahead and end + RECORD > written:
                os.pwrite(fd, b"\0" * AHEAD, written)
                written += AHEAD
            t = time.perf_counter()
            os.pwrite(fd, b"x" * RECORD, end)
            os.fdatasync(fd)
            took.append(time.perf_counter() - t)
            end += RECORD
    finally:
        os.close(fd)
        os.remove(path)
    took.sort()
    us = lambda q: took[min(len(took) - 1, int(q * len(took)))] * 1e6
    return "mean %5.0f  p50 %5.0f  p90 %5.0f µs" % (sum(took) / len(took) * 1e6, us(0.5), us(0.9))


for r in range(ROUNDS):
    print("round %d  append: %s   zeros ahead: %s" % (r + 1, probe(False), probe(True)))
