"""The studio driven headlessly, as a person would: set the widgets, click Protect, look at what comes out."""
import io
import time
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

from c2p.core import shared_dir
from c2p.widgets import UPLOAD, Studio

FACES = shared_dir() / "faces"


def _upload_value(image: Image.Image, name="photo.png"):
    buf = io.BytesIO(); image.save(buf, format="PNG"); data = buf.getvalue()
    return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data), "last_modified": datetime.now(timezone.utc)},)


@pytest.fixture(scope="module")
def studio():
    return Studio(preset="tiny", samples=[FACES / "biden" / "biden_official_portrait.jpg"])


def test_protect_click(studio):
    studio.prompt.value = "red lipstick"
    studio.steps.value = 4
    studio.lambda_adv.value = 1.0
    assert studio.target.disabled  # dodging needs no target
    studio.run_button.click()
    assert studio.wait(900), "the run did not finish"
    assert studio.error is None, studio.error
    photo = Image.open(FACES / "biden" / "biden_official_portrait.jpg")
    assert studio.result.image.size == photo.size
    report = studio.result.report
    assert report["prompt"] == "red lipstick" and report["mode"] == "dodging" and len(report["faces"]) == 1
    assert report["faces"][0]["steps"] <= 4
    for value in (studio.before_after.value, studio.bars.value):
        assert Image.open(io.BytesIO(value)).width > 100
    assert 'download="protected.png"' in studio.download.value
    assert studio.status.value.startswith("Done") and "Face 1" in studio.status.value
    assert not studio.run_button.disabled and studio.stop_button.disabled  # controls are back


def test_no_face_shows_message(studio):
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (256, 1)), "L").convert("RGB")
    studio.photo.value = UPLOAD
    studio.upload.value = _upload_value(gradient)
    studio.run_button.click()
    assert studio.wait(300)
    assert studio.result is None and studio.error and "face" in studio.error.lower()
    assert "c2p-error" in studio.message.value and "Traceback" not in studio.message.value
    studio.photo.value = studio.photo.options[0]


def test_impersonation_needs_target_upload(studio):
    studio.mode.value = "impersonation"
    assert not studio.target.disabled
    studio.target.value = UPLOAD  # chosen "upload" but nothing uploaded
    studio.run_button.click()
    assert studio.wait(60)
    assert "target" in studio.error
    studio.mode.value = "dodging"
    assert studio.target.disabled


def test_stop_ends_cleanly(studio):
    studio.steps.value = 300
    studio.run_button.click()
    deadline = time.time() + 600
    while studio.progress.value == 0 and time.time() < deadline and not studio.wait(0.2):
        pass
    studio.stop_button.click()
    assert studio.wait(300)
    assert studio.result is None and studio.error is None
    assert studio.status.value.startswith("Stopped")
    assert not studio.run_button.disabled
