"""End to end in a real browser: JupyterLab serves the studio, headless Chromium (driven by Playwright) looks at it as a
person would. Three states are photographed: the chapter freshly opened (a readable note where the app will be), a text
file uploaded (named at once as not an image) and the prompt changed after a run (result and download cleared).

The screenshots land in test-artifacts/; with C2P_UPDATE_SCREENSHOTS=1 they also replace nbs/images/studio_*.png, which
the chapter shows. JupyterLab serves copies in a temporary folder: the tracked notebooks are never opened, so never saved.
"""
import hashlib
import io
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
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "nbs" / "images"
UPDATE = os.environ.get("C2P_UPDATE_SCREENSHOTS") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHAPTER = ROOT / "nbs" / "11_studio.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def jupyterlab(tmp_path):
    "JupyterLab on a folder holding a copy of the chapter and the notebook `c2p studio` writes."
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the browser test needs it")
    pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    work = tmp_path / "work"; work.mkdir()
    shutil.copy(CHAPTER, work / CHAPTER.name)
    r = subprocess.run([sys.executable, "-c", "from c2p.cli import run; run()", "studio", str(work / "c2p_studio.ipynb"),
                        "--no-open"], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert r.returncode == 0 and "wrote" in r.stdout, r.stdout + r.stderr
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)  # no "get notified about Jupyter news?" box over the page
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false", "checkForUpdates": false}')
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"), JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
               MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--allow-root",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
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


def _save(png: bytes, name: str):
    "A screenshot, made small (at most 900 px wide, 256 colours), into test-artifacts/ and, when updating, nbs/images/."
    im = Image.open(io.BytesIO(png)).convert("RGB")
    if im.width > 900: im = im.resize((900, round(im.height * 900 / im.width)), Image.Resampling.LANCZOS)
    im = im.quantize(256, method=Image.Quantize.MEDIANCUT)
    ARTIFACTS.mkdir(exist_ok=True)
    im.save(ARTIFACTS / name, optimize=True)
    if UPDATE: im.save(SCREENSHOTS / name, optimize=True)


def _open(page, base, token, name):
    "Open notebook `name` in JupyterLab with only the notebook on screen (no file browser)."
    page.goto(f"{base}/lab/tree/{name}?reset&token={token}", timeout=120_000)  # reset: no other notebook restored
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget && "
                           "window.jupyterapp.shell.currentWidget.sessionContext && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session && "
                           "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel", timeout=120_000)
    page.evaluate("window.jupyterapp.shell.collapseLeft()")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)


def test_studio_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright
    base, token = jupyterlab
    tracked = _sha(CHAPTER)
    ARTIFACTS.mkdir(exist_ok=True)
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            # 1. The chapter as a reader opens it: the app's place says what appears there, not `HBox(children=...`.
            _open(page, base, token, CHAPTER.name)
            note = page.locator(".c2p-studio-placeholder")
            note.wait_for(state="attached", timeout=60_000)
            cell = page.locator(".jp-CodeCell", has=note)
            intro = page.locator(".jp-MarkdownCell", has_text="Run the cell below")
            for _ in range(8):  # the notebook renders cells as they scroll in: scroll until the layout is still
                page.evaluate("""async () => { const nb = window.jupyterapp.shell.currentWidget.content;
                    const i = nb.widgets.findIndex(c => c.model.sharedModel.getSource().includes('Run the cell below'));
                    await nb.scrollToItem(i, 'start'); }""")
                page.wait_for_timeout(700)
                a, b = intro.bounding_box(), cell.bounding_box()
                if a and b and 0 <= a["y"] < b["y"] < 880 and note.is_visible(): break
            else:
                raise AssertionError(f"the app's cell did not come into view: {a}, {b}")
            text = note.inner_text()
            assert note.count() == 1 and "appears here when this cell runs" in text and "Shift+Enter" in text, text
            assert "HBox(" not in cell.locator(".jp-OutputArea").inner_text()
            bottom = min(b["y"] + b["height"] + 4, 868)
            _save(page.screenshot(clip={"x": b["x"], "y": a["y"], "width": b["width"], "height": bottom - a["y"]}),
                  "studio_fresh_open.png")

            # 2. The notebook `c2p studio` wrote, run: the note gives way to the app.
            _open(page, base, token, "c2p_studio.ipynb")
            page.locator(".c2p-studio-placeholder").wait_for(state="visible", timeout=60_000)  # the same note before it runs
            page.locator(".jp-CodeCell .jp-InputArea-editor").first.click()  # as the note says: click in it,
            page.keyboard.press("Shift+Enter")  # and run it
            studio = page.locator(".c2p-studio").last
            studio.wait_for(timeout=300_000)
            assert page.locator(".c2p-studio-placeholder").count() == 0

            # 3. A text file uploaded: named at once, next to the button, before anyone presses Protect.
            with page.expect_file_chooser() as chooser:  # the button opens the browser's file dialog
                studio.get_by_role("button", name="Upload photo").click()
            chooser.value.set_files(files=[{"name": "notes.txt", "mimeType": "text/plain",
                                            "buffer": b"shopping list: milk, eggs\n"}])
            error = studio.locator(".c2p-error", has_text="notes.txt is not an image")
            error.wait_for(state="visible", timeout=60_000)
            assert studio.locator(".widget-dropdown", has_text="Photo").locator("select").input_value() == "(upload your own)"
            assert studio.locator("a.c2p-download").count() == 0
            studio.scroll_into_view_if_needed()
            _save(studio.screenshot(), "studio_upload_error.png")

            # 4. A run on a sample photo, then the prompt changed: the result and its download link go at once.
            studio.locator(".widget-dropdown", has_text="Photo").locator("select").select_option(index=0)
            slider = studio.locator(".widget-slider", has_text="Iterations")
            slider.locator(".noUi-handle").focus()
            for _ in range(12):  # down to a short search, with the keyboard as a person would
                slider.locator(".noUi-handle").press("PageDown")
            steps = int(slider.locator(".widget-readout").inner_text())
            assert steps < 50, steps
            studio.get_by_role("button", name="Protect").click()
            studio.locator("img.c2p-result").wait_for(state="visible", timeout=600_000)
            page.wait_for_function("document.querySelector('img.c2p-result').naturalWidth > 0", timeout=60_000)
            studio.locator("a.c2p-download").wait_for(state="visible", timeout=60_000)
            assert "Done" in studio.locator(".widget-html", has_text="Done").first.inner_text(timeout=60_000)
            assert studio.locator(".c2p-error").count() == 0
            prompt = studio.locator(".widget-text", has_text="Makeup").locator("input")
            prompt.fill("smoky eyes")
            studio.locator(".c2p-changed", has_text="Makeup changed").wait_for(state="visible", timeout=60_000)
            page.wait_for_function("!document.querySelector('a.c2p-download') && !document.querySelector('img.c2p-result')",
                                   timeout=60_000)
            studio.scroll_into_view_if_needed()
            _save(studio.screenshot(), "studio_changed_prompt.png")
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "studio_failure.png"))
            raise
        finally:
            browser.close()
    assert _sha(CHAPTER) == tracked  # using the app never touched the tracked chapter
