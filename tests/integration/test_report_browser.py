"""The run report renders in a real browser: headless Chromium loads report.html from disk with
no network, runs its render check (data-* attributes on <body>) without errors, shows every
image, and a screenshot is kept in tests/artifacts/report.png for a person to look at."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rlaif.report.stage import write_report
from tests.report_fixture import make_run

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TIMEOUT = 60


def _chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("headless Chromium is needed for this test: apt-get install chromium "
                    "(`make test` installs it)")
    return exe


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    # a private profile, so parallel runs and a user's own browser do not collide;
    # stderr carries harmless noise (dbus, GPU), so only the DOM and the files are checked
    return subprocess.run([_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_report_renders_in_headless_chromium(tmp_path):
    run = make_run(tmp_path / "run")
    html_path = write_report(run)["html"]
    html = html_path.read_text(encoding="utf-8")
    n_images = len(re.findall(r"<img\b", html))
    assert n_images >= 3

    dom = _run(["--virtual-time-budget=5000", "--dump-dom", html_path.as_uri()], tmp_path)
    body = re.search(r"<body\b[^>]*>", dom.stdout)
    assert body, f"no <body> in Chromium's DOM dump (exit {dom.returncode}): {dom.stderr[-2000:]}"
    attrs = dict(re.findall(r'data-([a-z]+)="([^"]*)"', body.group(0)))
    assert attrs.get("ready") == "1", body.group(0)
    assert attrs.get("errors") == "0", body.group(0)
    assert int(attrs.get("images", -1)) == n_images, body.group(0)
    assert int(attrs.get("tables", -1)) >= 3, body.group(0)

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    _run(["--hide-scrollbars", "--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1280,2400",
          html_path.as_uri()], tmp_path)
    assert shot.exists(), "Chromium wrote no screenshot"
    assert shot.stat().st_size > 10_000, shot.stat().st_size
