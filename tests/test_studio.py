"""The studio driven headlessly, as a person would: set the widgets, click Protect, look at what comes out."""
import base64
import io
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from c2p.core import shared_dir
from c2p.faces import sample_photo
from c2p.pipeline import PRESETS
from c2p.widgets import PLACEHOLDER_HTML, UPLOAD, Studio, placeholder, png_bytes, similarity_bars
from c2p import widgets

ROOT = Path(__file__).resolve().parent.parent
BIDEN = sample_photo("biden")  # installed with c2p: these tests run in any clone
SHARED_GROUP = shared_dir() / "faces" / "group" / "two_people.jpg" if shared_dir() else None


def _upload_value(image: Image.Image, name="photo.png"):
    fmt = "JPEG" if name.lower().endswith((".jpg", ".jpeg")) else "PNG"
    buf = io.BytesIO(); image.save(buf, format=fmt); data = buf.getvalue()
    return ({"name": name, "type": f"image/{fmt.lower()}", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.now(timezone.utc)},)


def _group_photo() -> Image.Image:
    "The shared group photo when present, else the two sample portraits side by side: two faces either way."
    if SHARED_GROUP is not None and SHARED_GROUP.exists():
        return Image.open(SHARED_GROUP).convert("RGB")
    a, b = (Image.open(sample_photo(n)).convert("RGB") for n in ("obama", "biden"))
    b = b.resize((round(b.width * a.height / b.height), a.height))
    out = Image.new("RGB", (a.width + b.width, a.height)); out.paste(a, (0, 0)); out.paste(b, (a.width, 0))
    return out


def _gradient():
    return Image.fromarray(np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1)), "L").convert("RGB")


def _img(value: bytes) -> Image.Image:
    return Image.open(io.BytesIO(value))


@pytest.fixture(scope="module")
def studio():
    return Studio(preset="tiny", samples=[BIDEN])


def test_placeholders_before_the_first_run():
    s = Studio(preset="tiny", samples=[BIDEN])
    for w in (s.preview, s.before_after, s.faces_view, s.bars):
        im = _img(w.value)  # a real PNG (an empty value shows a broken-image icon)
        assert im.width >= 200 and len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 2
    assert s.download.value == "" and "c2p-result" not in s.before_after._dom_classes


def test_a_saved_notebook_shows_a_note_not_the_widget_repr():
    "Where the live widget cannot be shown (a notebook opened before its cell runs) a readable note stands in."
    shown = Studio(preset="tiny", samples=[BIDEN])._repr_mimebundle_()
    assert shown["application/vnd.jupyter.widget-view+json"]["model_id"]  # live: the app itself
    assert shown["text/html"] == PLACEHOLDER_HTML and "Shift+Enter" in PLACEHOLDER_HTML
    assert "HBox" not in shown["text/plain"] and "appears here" in shown["text/plain"]
    nb = json.loads((ROOT / "nbs" / "11_studio.ipynb").read_text())
    app = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
           if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    html = app[0]["data"]["text/html"] if app else ""
    html = "".join(html) if isinstance(html, list) else html  # a saved notebook may keep a string as its lines
    assert len(app) == 1 and html == PLACEHOLDER_HTML  # the stored chapter carries the note


def _text_upload(name="notes.txt", data=b"shopping list: milk, eggs\n"):
    return ({"name": name, "type": "text/plain", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.now(timezone.utc)},)


def test_a_file_that_is_not_an_image_is_named_at_once():
    s = Studio(preset="tiny", samples=[BIDEN], background=False)
    s.upload.value = _text_upload()
    assert s.photo.value == UPLOAD  # what was uploaded is the choice, even when it is not usable
    assert "notes.txt is not an image" in s.upload_note.value and "c2p-error" in s.upload_note.value  # before Protect
    assert s.result is None and s.error is None  # nothing ran
    s.photo.value = BIDEN.name
    assert s.upload_note.value == ""  # a sample photo chosen: the note about the upload goes
    s.photo.value = UPLOAD
    assert "notes.txt is not an image" in s.upload_note.value  # and comes back with the upload
    s.run_button.click()  # pressing Protect anyway says the same, naming the file (not "photo bytes")
    assert s.error.startswith("notes.txt is not an image") and "photo bytes" not in s.message.value, s.error
    s.upload.value = _upload_value(_gradient(), "fine.png")
    assert s.upload_note.value == '<span class="c2p-upload-ok">fine.png: 256x256 pixels</span>'
    assert s.error is None and s.message.value == ""  # the old error went with the old file
    s.mode.value = "impersonation"
    s.target_upload.value = _text_upload("target.pdf", b"%PDF-1.4")
    assert s.target.value == UPLOAD and "target.pdf is not an image" in s.target_note.value


class _Result:  # what protect() returns, for tests of the app around it
    def __init__(self, image):
        self.image = image
        self.report = {"mode": "dodging", "faces": [{"box": (40, 40, 200, 200), "protected": {"dlib": True},
                                                     "scores_before": {"dlib": 0.1}, "scores_after": {"dlib": 0.7},
                                                     "thresholds": {"dlib": 0.6}}]}


def test_any_setting_changed_after_a_run_clears_the_result():
    calls = []
    s = Studio(preset="tiny", samples=[BIDEN], background=False,
               protect_fn=lambda photo, prompt, **kw: calls.append(prompt) or _Result(photo))
    changes = {"photo": UPLOAD, "upload": _upload_value(_gradient(), "g.png"), "prompt": "smoky eyes",
               "mode": "impersonation", "target": UPLOAD, "target_upload": _upload_value(_gradient(), "t.png"),
               "strength": "bold", "lambda_adv": 1.2, "lambda_clip": 0.5, "lambda_lat": 0.05, "steps": 7,
               "preset": next(p for p in PRESETS if p != "tiny"), "device": "cpu" if s.device.value != "cpu" else None}
    assert {w.description for w in s.settings} >= {"Photo", "Makeup", "Mode", "Strength", "Iterations", "Preset", "Device"}
    for name, value in changes.items():
        if value is None: continue  # no other device on this machine
        for w in (s.photo, s.target): w.value = BIDEN.name  # a sample photo: every run has something to protect
        s.mode.value = "dodging"
        s.run_button.click()
        assert s.result is not None and "download=" in s.download.value and "c2p-result" in s.before_after._dom_classes, name
        getattr(s, name).value = value
        assert s.result is None and s.download.value == "" and "c2p-result" not in s.before_after._dom_classes, name
        assert s.before_after.value == png_bytes(placeholder("Your photo before and after\nappears here", (480, 192))), name
        assert "changed: the result was cleared" in s.status.value, (name, s.status.value)
    s.photo.value = BIDEN.name; s.mode.value = "dodging"; s.run_button.click()
    s.examples.value = s.examples.options[-1]  # an example prompt is a new prompt too
    assert s.prompt.value == s.examples.options[-1] and s.result is None and "Makeup changed" in s.status.value
    n = len(calls)
    s.steps.value = 9  # nothing on screen: nothing to clear, nothing run
    assert len(calls) == n and "Makeup changed" in s.status.value


def test_studio_command_writes_a_notebook_of_your_own(tmp_path, monkeypatch, capsys):
    "`c2p studio` puts the chapter's app cell into a notebook of one's own and opens that one, never the chapter."
    import nbformat
    from c2p.cli import main
    started = []
    class _Lab:
        def __init__(self, cmd, cwd): started.append((cmd, cwd))
        def wait(self): return 0
    monkeypatch.setattr(widgets.subprocess, "Popen", _Lab)
    monkeypatch.chdir(tmp_path)
    assert main(["studio"]) == 0
    path = tmp_path / "c2p_studio.ipynb"
    out = capsys.readouterr().out
    assert out.startswith("c2p studio: wrote c2p_studio.ipynb") and out.count("\n") == 1, out
    assert started == [([sys.executable, "-m", "jupyterlab", "c2p_studio.ipynb"], tmp_path.resolve())]
    nb = nbformat.reads(path.read_text(), 4); nbformat.validate(nb)
    chapter = json.loads((ROOT / "nbs" / "11_studio.ipynb").read_text())["cells"]
    i = next(i for i, c in enumerate(chapter) if c["cell_type"] == "markdown" and "Run the cell below" in "".join(c["source"]))
    app_cell = "".join(next(c for c in chapter[i + 1:] if c["cell_type"] == "code")["source"])
    assert nb.cells[1].source == app_cell  # the same cell as the chapter's
    assert nb.cells[1].outputs[0]["data"]["text/html"] == PLACEHOLDER_HTML  # a note until it runs
    path.write_text(path.read_text().replace("# c2p studio", "# my own studio"))
    assert main(["studio", str(path), "--no-open"]) == 0  # a notebook in use is opened as it is, never overwritten
    said = capsys.readouterr()
    assert "# my own studio" in path.read_text() and "opening it as it is" in said.err and "jupyter lab" in said.out
    assert len(started) == 1  # --no-open opened nothing
    for bad, words in ((tmp_path, "is a folder"), (tmp_path / "notes.txt", "ends in .ipynb")):
        assert main(["studio", str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    real = widgets.importlib.util.find_spec  # no JupyterLab installed:
    monkeypatch.setattr(widgets.importlib.util, "find_spec", lambda name, *a: None if name == "jupyterlab" else real(name, *a))
    assert main(["studio", str(tmp_path / "other.ipynb")]) == 1
    err = capsys.readouterr().err
    assert "JupyterLab is not installed" in err and (tmp_path / "other.ipynb").exists() and len(started) == 1


def test_the_chapter_s_screenshots_are_there_and_small():
    "The browser test's screenshots the chapter shows (fresh open, upload error, changed prompt) are committed, and small."
    text = "".join("".join(c["source"]) for c in json.loads((ROOT / "nbs" / "11_studio.ipynb").read_text())["cells"]
                   if c["cell_type"] == "markdown")
    shown = re.findall(r"\]\((images/[^)]+\.png)\)", text)
    assert shown == ["images/studio_fresh_open.png", "images/studio_upload_error.png", "images/studio_changed_prompt.png"]
    for name in shown:
        path = ROOT / "nbs" / name
        assert path.exists() and path.stat().st_size < 150_000, name
        assert 400 <= Image.open(path).width <= 900, name


def test_presets_come_from_the_pipeline():
    s = Studio(samples=[BIDEN])
    assert list(s.preset.options) == list(PRESETS) and s.preset.value == PRESETS[0]


def test_uploading_selects_the_upload():
    s = Studio(preset="tiny", samples=[BIDEN])
    assert s.photo.value == BIDEN.name
    s.upload.value = _upload_value(_gradient(), "mine.png")
    assert s.photo.value == UPLOAD
    s.mode.value = "impersonation"
    s.target_upload.value = _upload_value(_gradient(), "target.png")
    assert s.target.value == UPLOAD


def test_protect_click(studio):
    studio.prompt.value = "red lipstick"
    studio.steps.value = 4
    studio.lambda_adv.value = 1.0
    assert studio.target.disabled  # dodging needs no target
    statuses = []
    studio.status.observe(lambda ch: statuses.append(ch["new"]), "value")
    studio.run_button.click()
    assert studio.wait(900), "the run did not finish"
    assert studio.error is None, studio.error
    photo = Image.open(BIDEN)
    assert studio.result.image.size == photo.size
    report = studio.result.report
    assert report["prompt"] == "red lipstick" and report["mode"] == "dodging" and len(report["faces"]) == 1
    assert report["faces"][0]["steps"] <= 4
    for value in (studio.before_after.value, studio.bars.value, studio.faces_view.value):
        assert _img(value).width > 100
    # the download is named after the input and keeps its format (a JPEG here)
    link = studio.download.value
    assert 'download="biden_official_portrait_protected.jpg"' in link and "data:image/jpeg;base64," in link
    assert Image.open(io.BytesIO(base64.b64decode(link.split("base64,")[1].split('"')[0]))).format == "JPEG"
    assert studio.status.value.startswith("Done") and "Face 1" in studio.status.value
    # the live status is plain language: how far dlib's distance is from what protects
    plain = [s for s in statuses if re.fullmatch(r"step \d+/4: dlib distance \d\.\d\d -> needs > 0\.60( \(reached\))?", s)]
    assert plain, statuses
    live = [s for s in statuses if s.startswith(("step", "face", "finding", "fine-tuning"))]
    assert not any("done" in s.lower() for s in live)  # "Done" is only said when the run is over
    assert live and not any(re.search(r"\b(adv|clip|lat|loss)\b", s) for s in live), live  # no loss jargon
    assert not studio.run_button.disabled and studio.stop_button.disabled  # controls are back


def test_no_face_clears_the_previous_result(studio):
    if studio.result is None:  # make sure there is a result on screen to be cleared
        studio.steps.value = 2; studio.run_button.click(); assert studio.wait(900) and studio.result is not None
    assert "download=" in studio.download.value
    studio.upload.value = _upload_value(_gradient())
    assert studio.photo.value == UPLOAD  # the upload is what runs next
    assert studio.result is None and studio.download.value == ""  # a new photo: the old result went at once
    studio.run_button.click()
    assert studio.wait(300)
    assert studio.result is None and studio.error and "face" in studio.error.lower()
    assert "c2p-error" in studio.message.value and "Traceback" not in studio.message.value
    assert studio.download.value == "" and "c2p-result" not in studio.before_after._dom_classes
    assert studio.before_after.value == png_bytes(placeholder("Your photo before and after\nappears here", (480, 192)))
    studio.photo.value = studio.photo.options[0]


def test_impersonation_needs_target_upload(studio):
    studio.mode.value = "impersonation"
    assert not studio.target.disabled
    studio.target.value = UPLOAD  # chosen "upload" but nothing uploaded
    studio.run_button.click()
    assert studio.wait(60)
    assert "target" in studio.error and studio.download.value == ""
    studio.mode.value = "dodging"
    assert studio.target.disabled


def test_group_photo_numbered_and_every_face_previewed():
    s = Studio(preset="tiny", samples=[BIDEN], preview_every=1)
    s.upload.value = _upload_value(_group_photo(), "group.jpg")
    s.steps.value = 3
    s.run_button.click()
    assert s.wait(1200) and s.error is None, s.error
    faces = s.result.report["faces"]
    assert len(faces) == 2
    preview = _img(s.preview.value)
    assert preview.width >= 2 * 192 and preview.height == 192  # one preview per face, side by side
    panels = _img(s.faces_view.value)
    assert panels.height >= 2 * 192 and panels.width >= 2 * 192  # one row per face, big enough to see
    ba = _img(s.before_after.value).convert("RGB")
    assert ba.height >= 400
    # numbered: the yellow label boxes are drawn on both halves, once per face
    yellow = np.all(np.abs(np.asarray(ba, int) - (255, 212, 0)) < 30, axis=2)
    half = ba.width // 2
    assert yellow[:, :half].sum() > 100 and yellow[:, half:].sum() > 100
    assert 'download="group_protected.jpg"' in s.download.value


def test_bars_show_before_and_the_protected_side():
    rep = {"mode": "dodging", "faces": [{"scores_before": {"dlib": 0.0}, "scores_after": {"dlib": 0.7}, "thresholds": {"dlib": 0.6}}]}
    fig = similarity_bars(rep)
    ax = fig.axes[0]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"before", "after", "threshold", "protected side"} <= set(labels)
    texts = [t.get_text() for t in ax.texts]
    assert "0.00" in texts and any(t.startswith("protected") and "↑" in t for t in texts)  # dlib: a larger distance protects
    sim = similarity_bars({"mode": "dodging", "faces": [{"scores_before": {"irse50": 0.8}, "scores_after": {"irse50": 0.1},
                                                         "thresholds": {"irse50": 0.24}}]})
    assert any(t.get_text().startswith("protected") and "↓" in t.get_text() for t in sim.axes[0].texts)


def test_stop_ends_cleanly(studio):
    studio.steps.value = 300
    studio.run_button.click()
    deadline = time.time() + 600
    while studio.progress.value == 0 and time.time() < deadline and not studio.wait(0.2):
        pass
    studio.stop_button.click()
    assert studio.wait(300)
    assert studio.result is None and studio.error is None
    assert studio.status.value.startswith("Stopped") and studio.download.value == ""
    assert not studio.run_button.disabled


def test_the_chapter_s_first_instructions_work_in_a_fresh_kernel(tmp_path):
    "The cell the text tells the reader to run works on its own, in a new interpreter (no NameError: Studio)."
    nb = json.loads((ROOT / "nbs" / "11_studio.ipynb").read_text())
    cells = nb["cells"]
    i = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "Run the cell below" in "".join(c["source"]))
    code = "".join(next(c for c in cells[i + 1:] if c["cell_type"] == "code")["source"])
    script = tmp_path / "first_cell.py"
    script.write_text(code + "\nassert studio.widget is not None\n")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
