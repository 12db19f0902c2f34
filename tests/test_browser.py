"""End to end in a real browser: JupyterLab serves the studio notebook, headless Chromium (driven by Playwright)
runs it, moves a slider, clicks Protect and waits for the protected photo. A screenshot lands in test-artifacts/."""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), MPLBACKEND="Agg")
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("JupyterLab exited: " + (tmp_path / "jupyterlab.log").read_text()[-2000:])
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start in 60 s: " + (tmp_path / "jupyterlab.log").read_text()[-2000:])
        yield base, token
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()


def test_studio_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright
    base, token = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{base}/lab/tree/nbs/11_studio.ipynb?token={token}", timeout=120_000)
            select = page.locator(".jp-Dialog").get_by_role("button", name="Select")
            try:  # a notebook without a kernelspec asks which kernel to use
                select.click(timeout=10_000)
            except Exception:
                pass
            page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                                   "window.jupyterapp.shell.currentWidget.sessionContext && "
                                   "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                                   "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel", timeout=120_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            studio = page.locator(".c2p-studio").last
            studio.wait_for(timeout=300_000)
            # Move the iteration slider with the keyboard, as a person would: down to a short search.
            handle = studio.locator(".widget-slider", has_text="Iterations").locator(".noUi-handle")
            handle.focus()
            before = studio.locator(".widget-slider", has_text="Iterations").locator(".widget-readout").inner_text()
            for _ in range(3):
                handle.press("ArrowLeft")
            after = studio.locator(".widget-slider", has_text="Iterations").locator(".widget-readout").inner_text()
            assert int(after) < int(before), (before, after)
            studio.get_by_role("button", name="Protect").click()
            result = studio.locator("img.c2p-result")
            result.wait_for(state="visible", timeout=600_000)
            page.wait_for_function("document.querySelector('img.c2p-result').naturalWidth > 0", timeout=60_000)
            status = studio.locator(".widget-html", has_text="Done").first.inner_text(timeout=60_000)
            assert "Done" in status
            assert studio.locator("a.c2p-download").count() == 1
            assert studio.locator(".c2p-error").count() == 0
            studio.scroll_into_view_if_needed()
        finally:
            page.screenshot(path=str(ARTIFACTS / "studio.png"), full_page=False)
            browser.close()
