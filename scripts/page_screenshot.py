"""The README's picture of the local web page: start `fundus-mtl serve` (the shipped model), upload real photographs
(a good, a usable and a reject EyeQ photograph by their labels, EyeQ's CSV: 0 = good), one as a camera's JPEG DICOM,
and a truncated file through the page in headless Chromium, and save the screenshot.

    python scripts/page_screenshot.py [--data ../shared/data] [--out results/camera/page.png]
"""
import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import pandas as pd

from fundus_mtl.fixtures import drive_page, write_dicom

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--data", default="../shared/data", help="the real data folder")
ap.add_argument("--out", default="results/camera/page.png", help="the screenshot to write")
a = ap.parse_args()
root = Path(a.data) / "eyeq-subset256"
labels = pd.read_csv(root / "Label_EyeQ_subset.csv")
pick = [root / "images" / labels.loc[labels["quality"] == q, "image"].iloc[0] for q in (0, 1, 2)]   # EyeQ: 0 good, 1 usable, 2 reject
tmp = Path(tempfile.mkdtemp(prefix="page_"))
rgb = cv2.imread(str(pick[0]))[..., ::-1]
write_dicom(tmp / "IM000417", rgb[:, : rgb.shape[1] // 2 * 2], compressed=True)
(tmp / "broken.jpg").write_bytes(pick[1].read_bytes()[:4000])
with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
server = subprocess.Popen([str(Path(sys.executable).parent / "fundus-mtl"), "serve", "--port", str(port)])
try:
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            if httpx.get(url + "health", timeout=1).status_code == 200: break
        except httpx.HTTPError: time.sleep(0.5)
    cards = drive_page(url, [*pick, tmp / "IM000417", tmp / "broken.jpg"], a.out)
    for c in cards: print(c["state"], c["name"], c["text"].replace("\n", " | ")[:160])
    print(f"wrote {a.out}")
finally:
    server.terminate(); server.wait(30)
