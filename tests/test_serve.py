"""`fundus-mtl serve` as the technician meets it: a real server process with the camera's install (torch and every
training-only package refuse to import), listening on 127.0.0.1 only, answering good and bad uploads and going on; and
the page in a real browser (headless Chromium driven by Playwright), which uploads a real photograph, a broken file and
a DICOM and shows each answer."""
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from fundus_mtl.fixtures import PATIENT, drive_page, write_dicom, write_fundus
from fundus_mtl.report import find_chromium
from test_camera import NO_TORCH


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _listening(port):
    "Local addresses (hex ip, as /proc/net/tcp* write them) with a socket listening on `port`."
    out = []
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(f).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.split(":")[1], 16) == port: out.append(local.split(":")[0])
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve")
    port = _free_port()
    code = NO_TORCH + f"from fundus_mtl.cli import main; sys.exit(main(['serve', '--port', '{port}']))"
    log = open(d / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=d, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    for _ in range(120):
        try:
            if httpx.get(url + "health", timeout=1).status_code == 200: break
        except httpx.HTTPError: pass
        if proc.poll() is not None: break
        time.sleep(0.5)
    else: proc.kill()
    if proc.poll() is not None: pytest.fail(f"the server did not start: {(d / 'server.log').read_text()[-2000:]}")
    yield url, port, d, proc
    proc.terminate(); proc.wait(30); log.close()


def _photo(shared_dir, d):
    "A real fundus photograph when ../shared/data is there, else a synthetic one."
    real = sorted((shared_dir / "drimdb" / "Good").glob("*.jpg"))[:1] if shared_dir.is_dir() else []
    return real[0] if real else write_fundus(d / "photo.jpg", 4)


def test_server_without_torch_on_loopback_survives_bad_uploads(server):
    from conftest import SHARED
    url, port, d, proc = server
    assert _listening(port) == ["0100007F"]                                  # 127.0.0.1, and nothing else
    assert f"the page is at {url}" in (d / "server.log").read_text()
    jpg = _photo(SHARED, d).read_bytes()
    post = lambda body, ctype="image/jpeg": httpx.post(url + "api/predict?name=x", content=body, headers={"Content-Type": ctype}, timeout=60)
    good = post(jpg)
    assert good.status_code == 200 and good.json()["overall"] in ("reject", "usable", "good"), good.text
    for body, ctype, status in [(b"", "image/jpeg", 400), (jpg[:2000], "image/jpeg", 422), (b"x" * 100, "image/png", 422),
                                (jpg, "text/html", 415), (b"\0" * (31 * 2**20), "image/jpeg", 413)]:
        r = post(body, ctype)
        assert r.status_code == status and r.json()["detail"], (status, r.text[:300])
    again = post(jpg)
    assert again.status_code == 200 and again.json()["probabilities"] == good.json()["probabilities"] and proc.poll() is None


@pytest.mark.skipif(not find_chromium(), reason="no Chromium: install Debian's chromium package for the browser test")
def test_the_page_in_a_real_browser(server, tmp_path):
    pytest.importorskip("playwright", reason="Playwright for Python drives the browser (the dev install has it)")
    from conftest import SHARED
    url, _, d, _ = server
    photo = _photo(SHARED, d)
    broken = tmp_path / "broken.jpg"; broken.write_bytes(photo.read_bytes()[:3000])
    uid = write_dicom(tmp_path / "IM000123", cv2.imread(str(photo))[..., ::-1][:, :-1 if cv2.imread(str(photo)).shape[1] % 2 else None], compressed=True)
    png = tmp_path / "page.png"
    cards = {c["name"]: c for c in drive_page(url, [photo, broken, tmp_path / "IM000123"], png)}
    assert cards[photo.name]["state"] == "ok" and any(v in cards[photo.name]["text"] for v in ("good", "usable", "reject"))
    assert "where it looked" in cards[photo.name]["text"]
    assert cards["broken.jpg"]["state"] == "error" and "422: truncated or corrupt image data" in cards["broken.jpg"]["text"]
    assert cards["IM000123"]["state"] == "ok" and uid in cards["IM000123"]["text"]
    assert not any(v in c["text"] for c in cards.values() for v in PATIENT.values())
    shot = cv2.imread(str(png))
    assert shot is not None and shot.shape[1] == 1100 and shot.std() > 20   # a page with pictures on it, not a blank
