#!/usr/bin/env python3
"""Measures the operator surface of a release build: the time from start to a listening
Stratum port, the pool process's CPU with and without a metrics scrape every second plus ten
WebSocket clients, and the binary's size.

    cargo build --release -p otedama-cli
    python3 scripts/measure_operator.py [--binary target/release/otedama-cli] [--seconds 60]

The pool runs on the embedded devnet with no built-in miner; one external `otedama-cli mine`
process (one thread) keeps shares flowing, so the pool's own CPU is what is measured.
"""

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_port(port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                return True
        except OSError:
            time.sleep(0.001)
    return False


def start_pool(binary, workdir, stratum, api, with_api):
    config = os.path.join(workdir, f"pool-{stratum}.yaml")
    with open(config, "w") as f:
        f.write(
            "app:\n  mode: development\n"
            "mining:\n  enable_cpu: false\n"
            f"pool:\n  address: 127.0.0.1:{stratum}\n  difficulty: 0.0005\n"
            f"  database: {os.path.join(workdir, f'pool-{stratum}.db')}\n"
            f"api:\n  enable: {'true' if with_api else 'false'}\n  address: 127.0.0.1:{api}\n"
            "monitoring:\n  metrics:\n    enabled: true\n"
        )
    return subprocess.Popen(
        [binary, "serve", "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def ws_client(port, stop, counts, index):
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /api/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    s.settimeout(1.0)
    received = 0
    while not stop.is_set():
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        received += len(data)
    counts[index] = received
    s.close()


def measure_load(binary, workdir, seconds, with_load):
    stratum, api = free_port(), free_port()
    pool = start_pool(binary, workdir, stratum, api, with_load)
    try:
        if not wait_port(stratum, 30):
            sys.exit("the pool did not listen")
        miner = subprocess.Popen(
            [binary, "mine", "-o", f"stratum+tcp://127.0.0.1:{stratum}",
             "-u", "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.m", "--algo", "sha256d",
             "--threads", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stop = threading.Event()
        threads, counts = [], [0] * 10
        scrapes = 0
        try:
            time.sleep(3)
            if with_load:
                wait_port(api, 10)
                for i in range(10):
                    t = threading.Thread(target=ws_client, args=(api, stop, counts, i))
                    t.start()
                    threads.append(t)
            before, started = cpu_seconds(pool.pid), time.monotonic()
            while time.monotonic() - started < seconds:
                if with_load:
                    urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics").read()
                    urllib.request.urlopen(f"http://127.0.0.1:{api}/api/stats").read()
                    scrapes += 1
                time.sleep(1)
            used = cpu_seconds(pool.pid) - before
            elapsed = time.monotonic() - started
        finally:
            stop.set()
            for t in threads:
                t.join()
            miner.terminate()
            miner.wait()
        return used / elapsed * 100.0, scrapes, sum(counts)
    finally:
        pool.terminate()
        pool.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default="target/release/otedama-cli")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--starts", type=int, default=10)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="otedama-measure-")

    times = []
    for _ in range(args.starts):
        stratum, api = free_port(), free_port()
        t0 = time.monotonic()
        pool = start_pool(args.binary, workdir, stratum, api, True)
        ok = wait_port(stratum, 30)
        times.append((time.monotonic() - t0) * 1000.0)
        pool.terminate()
        pool.wait()
        if not ok:
            sys.exit("the pool did not listen")
    times.sort()
    print(f"start to listening: median {times[len(times) // 2]:.1f} ms, "
          f"min {times[0]:.1f} ms, max {times[-1]:.1f} ms over {len(times)} starts")

    idle, _, _ = measure_load(args.binary, workdir, args.seconds, False)
    loaded, scrapes, ws_bytes = measure_load(args.binary, workdir, args.seconds, True)
    print(f"pool CPU without API load: {idle:.2f} % of one core")
    print(f"pool CPU with a scrape of /metrics and /api/stats every second and 10 WebSocket "
          f"clients: {loaded:.2f} % of one core ({scrapes} scrapes, {ws_bytes} WebSocket bytes)")
    print(f"difference: {loaded - idle:.2f} percentage points")
    print(f"binary size: {os.path.getsize(args.binary) / 1e6:.1f} MB ({args.binary})")


if __name__ == "__main__":
    main()
