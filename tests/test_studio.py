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
from c2p.widgets import UPLOAD, Studio, placeholder, png_bytes, similarity_bars

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
