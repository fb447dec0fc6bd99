"""The local web page under load (not a test): `fundus-mtl serve` with the shipped model, in its own process, and
`--clients` concurrent clients (asyncio + httpx on 127.0.0.1) sending `--requests` uploads in all, as the page sends
them (the photograph as the body, heatmaps on): real photographs — DrimDB's 760x570 JPEGs and EyeQ's 256-px ones,
one in ten as a camera's JPEG DICOM — and `--bad` of them bad (empty, truncated, not an image, a decompression bomb,
a wrong content type, a DICOM without pixels). Reports upload-to-answer latency (p50/p95/max of the good ones),
throughput, failures on good photographs (must be 0), whether every bad one got a 4xx, and the server's resident
memory after a warm-up and after the run (must agree within 10 %). Writes results/camera/load.md and its block
in results/benchmarks.md.

    .venv/bin/python benchmarks/serve_load.py [--clients 8] [--requests 400] [--bad 0.05] [--data ../shared/data]
"""
import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fundus_mtl.fixtures import bomb_png, write_dicom        # noqa: E402
from camera_speed import cpu_name, cpu_units, publish        # noqa: E402


def cpu_s(pid) -> float:
    "User + system CPU seconds of process `pid` so far."
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"): return int(line.split()[1]) / 1024


def uploads(data, tmp, n, bad_share, seed=0):
    "[(kind, body, content type, expect_ok)] for n requests, bad ones spread evenly."
    photos = sorted((data / "drimdb").rglob("*.jpg"))[:60] + sorted((data / "eyeq-subset256" / "images").glob("*.jpeg"))[:60]
    good = [("jpeg", p.read_bytes(), "image/jpeg") for p in photos]
    for k, p in enumerate(photos[::10]):
        rgb = cv2.imread(str(p))[..., ::-1]
        write_dicom(tmp / f"IM{k}", rgb[:, : rgb.shape[1] // 2 * 2], compressed=True)
        good.append(("dicom", (tmp / f"IM{k}").read_bytes(), "application/dicom"))
    write_dicom(tmp / "NOPIX", np.zeros((64, 64, 3), np.uint8), pixels=False)
    j = good[0][1]
    bad = [("empty", b"", "image/jpeg"), ("truncated", j[: len(j) // 3], "image/jpeg"), ("text", b"not a photograph" * 10, "image/jpeg"),
           ("bomb", bomb_png(), "image/png"), ("content-type", j, "text/plain"), ("dicom-no-pixels", (tmp / "NOPIX").read_bytes(), "application/dicom")]
    n_bad = round(n * bad_share)
    rng = random.Random(seed)
    out = [(*rng.choice(good), True) for _ in range(n - n_bad)]
    for i in range(n_bad): out.insert(i * n // max(n_bad, 1), (*bad[i % len(bad)], False))
    return out


async def run(url, work, clients):
    q = asyncio.Queue()
    for w in work: q.put_nowait(w)
    results = []
    async def client():
        async with httpx.AsyncClient(timeout=120) as c:
            while not q.empty():
                kind, body, ctype, ok = q.get_nowait()
                t0 = time.perf_counter()
                try: r = await c.post(url + "api/predict?name=x", content=body, headers={"Content-Type": ctype}); status = r.status_code
                except httpx.HTTPError as e: status = f"{type(e).__name__}"
                results.append((kind, ok, status, time.perf_counter() - t0))
    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return results, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--bad", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3, help="runs of --requests each, against the same server")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="load_"))
    work = uploads(Path(a.data), tmp, a.requests, a.bad)
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).parent / "fundus-mtl"), "serve", "--port", str(port)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):
            try:
                if httpx.get(url + "health", timeout=1).status_code == 200: break
            except httpx.HTTPError: time.sleep(0.5)
        warm, _ = asyncio.run(run(url, [w for w in work if w[3]][:40], a.clients))   # warm-up: the same mix of good photographs
        mem0 = rss_mb(server.pid)
        runs = []
        for _ in range(a.repeats):
            c0, s0 = cpu_s(os.getpid()), cpu_s(server.pid)
            runs.append((*asyncio.run(run(url, work, a.clients)), cpu_s(os.getpid()) - c0, cpu_s(server.pid) - s0))
        mem1 = rss_mb(server.pid)
        alive = httpx.get(url + "health", timeout=5).status_code == 200
    finally:
        server.terminate(); server.wait(30)
    rows, by_kind = [], {}
    for res, wall, client_cpu, server_cpu in runs:
        good = [r for r in res if r[1]]; bad = [r for r in res if not r[1]]
        lat = np.array([r[3] for r in good if r[2] == 200]) * 1000
        for k, _, st, _ in bad: by_kind.setdefault(k, set()).add(st)
        rows.append(dict(requests=len(res), clients=a.clients, wall_s=round(wall, 1), throughput=round(len(res) / wall, 1),
                         p50=round(float(np.percentile(lat, 50)), 1), p95=round(float(np.percentile(lat, 95)), 1), max=round(float(lat.max()), 1),
                         fails=f"{sum(r[2] != 200 for r in good)} of {len(good)}",
                         bad_4xx=f"{sum(isinstance(r[2], int) and 400 <= r[2] < 500 for r in bad)} of {len(bad)}",
                         server_ms=round(1000 * server_cpu / len(res), 1), client_ms=round(1000 * client_cpu / len(res), 1)))
        print(rows[-1])
    table = "\n".join(f"| {k + 1} | {r['requests']} | {r['clients']} | {r['wall_s']} | {r['throughput']} | {r['p50']} | {r['p95']} | {r['max']} | {r['fails']} | {r['bad_4xx']} | {r['server_ms']} | {r['client_ms']} |"
                      for k, r in enumerate(rows))
    mem = f"{mem0:.0f} → {mem1:.0f} MB ({100 * (mem1 - mem0) / mem0:+.1f} %)"
    text = f"""# The local web page under load

Measured {date.today()} by `benchmarks/serve_load.py` on a {len(os.sched_getaffinity(0))}-core {cpu_name()} ({cpu_units()}): `fundus-mtl serve` with the shipped
int8 model (160 px, ONNX Runtime, CPU) in its own process, {a.clients} concurrent clients on 127.0.0.1 (asyncio + httpx, in
a second process on the same two cores) sending {a.requests} uploads as the page sends them (the photograph as the body,
heatmaps on): real photographs (DrimDB 760x570 and EyeQ 256-px JPEGs, one in ten as a camera's JPEG DICOM), and
{round(a.requests * a.bad)} bad ones ({a.bad:.0%}: {", ".join(sorted(by_kind))}). Latency is upload to answer as a client sees it,
queueing at the server included. {a.repeats} runs, one after another, against the same server.

| run | requests | clients | wall s | requests/s | good p50 ms | good p95 ms | good max ms | failures on good | bad answered 4xx | server CPU ms/request | clients' CPU ms/request |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{table}

The server's resident memory after a {len(warm)}-request warm-up, and after the {a.repeats} runs: {mem}.

Statuses of the bad uploads: {"; ".join(f"{k} {sorted(map(str, v))}" for k, v in sorted(by_kind.items()))}. The server answered /health after the run: {alive}.
"""
    publish("load", text); print(text)


if __name__ == "__main__":
    main()
