"""The default `makeup` preset end to end, offline, on real photos: dlib itself (its own detector, chip and ResNet)
judges the saved files, as a `face_recognition` user would. The full protocol (every shared face, three prompts,
JPEG and resize robustness) is `python tools/makeup_protocol.py`; this is its quick, always-run part."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from c2p.core import shared_dir
from c2p.cosmetics import face_canvas
from c2p.evaluation import DLIB_THRESHOLD, dlib_descriptors, pick_face
from c2p.faces import sample_photo, detect_faces, load_photo
from c2p.pipeline import load_models, protect, protect_files

FACES = (shared_dir() or Path("../shared")) / "faces"  # missing: the tests are skipped (marker shared)
GROUP = FACES / "group" / "two_people.jpg"
REFS = {"obama": sorted((FACES / "obama").glob("*.jpg")), "biden": sorted((FACES / "biden").glob("*.jpg"))}
OBAMA, BIDEN = sample_photo("obama"), sample_photo("biden")  # the portraits installed with c2p (the first of REFS)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models():
    return load_models("makeup", device="cpu")


def descriptor(image, box=None):
    face = pick_face(dlib_descriptors(image), box)
    assert face is not None, "dlib finds no face there"
    return face[1]


@pytest.mark.shared  # the group photo and each person's other photos
def test_group_photo_both_faces_leave_dlib_and_stay_makeup(models, tmp_path):
    shutil_src = tmp_path / "in" / "two_people.png"  # PNG: the pixels outside the makeup must keep their exact bits
    shutil_src.parent.mkdir()
    Image.open(GROUP).convert("RGB").save(shutil_src)
    # max: the strength at which both faces leave dlib with the eye makeup shown (bold stops at 0.5995 on one of them)
    statuses = protect_files([shutil_src], tmp_path / "out", "red lipstick, smoky eyes", models=models, progress=False,
                             log=lambda m: None, strength="max")
    assert [s["status"] for s in statuses] == ["done"], statuses
    out = Path(statuses[0]["output"])
    rep = json.loads(Path(statuses[0]["report"]).read_text())
    assert rep["preset"] == "makeup" and rep["renderer"] == "cosmetics" and len(rep["faces"]) == 2
    assert "lips (red)" in rep["look"] and "eyeshadow (smoky)" in rep["look"]
    assert all(f["strength"] == "max" and f["look"]["ok"] for f in rep["faces"])  # the look report: every bound held
    before, after = load_photo(shutil_src).image, load_photo(out).image
    # dlib itself, on the written file: each face is far from every photo of its person (left: Obama, right: Biden)
    for face, person in zip(rep["faces"], ("obama", "biden")):
        d = [float(np.linalg.norm(descriptor(after, face["box"]) - descriptor(load_photo(r).image))) for r in REFS[person]]
        d0 = float(np.linalg.norm(descriptor(before, face["box"]) - descriptor(load_photo(REFS[person][0]).image)))
        print(person, "before", round(d0, 3), "after", [round(v, 3) for v in d])
        assert d0 < DLIB_THRESHOLD < min(d)  # the same person before, no longer after
    # outside the faces' makeup canvases every pixel keeps its bits
    a0, a1 = np.asarray(before), np.asarray(after)
    inside = np.zeros(a0.shape[:2], bool)
    for f in detect_faces(before, landmarks68=True):
        x0, y0, w, h = face_canvas(f.landmarks68, before.size)
        inside[y0:y0 + h, x0:x0 + w] = True
    assert np.array_equal(a0[~inside], a1[~inside])
    changed = (a0 != a1).any(-1)
    assert changed.any() and changed.mean() < 0.15


def test_without_the_adversarial_loss_the_look_still_matches(models):
    photo = BIDEN
    res = protect(photo, "red lipstick, smoky eyes", models=models, progress=False, lambda_adv=0.0, steps=2)
    d = float(np.linalg.norm(descriptor(res.image) - descriptor(load_photo(photo).image)))
    print("control", round(d, 3))
    assert d < DLIB_THRESHOLD and res.report["faces"][0]["protected"] == {"dlib": False}
    assert res.report["faces"][0]["stronger"] is None  # no trial at a stronger setting when protection is off


def test_strength_natural_keeps_the_skin_and_says_what_a_stronger_setting_would_do(models):
    photo = OBAMA
    res = protect(photo, "red lipstick", models=models, progress=False)
    face = res.report["faces"][0]
    look = face["look"]
    print("natural", face["scores_after"], face["stronger"], look["numbers"])
    assert face["strength"] == "natural" and look["ok"] and look["shows"]["lips"]["shows"]
    assert face["scores_after"]["dlib"] > face["scores_before"]["dlib"] + 0.3
    if not face["protected"]["dlib"]:  # then the report says truthfully what the next strength reached
        s = face["stronger"]
        assert s["strength"] == "bold" and isinstance(s["protected"], bool) and s["scores"]["dlib"] > face["scores_after"]["dlib"]
        assert 1 <= s["steps"] <= 20  # the trial's own steps (CosmeticsConfig.trial_steps), as the bench counts them


@pytest.mark.parametrize("strength, words", [("loud", "unknown strength"), ("1.5", "out of range"),
                                             ("bold --preset tiny", "option of the makeup preset")])
def test_bad_strength_is_refused_before_any_work(tmp_path, strength, words):
    exe = Path(sys.executable).with_name("c2p")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from c2p.cli import run; run()"]
    r = subprocess.run(cmd + ["protect", str(BIDEN), "--out", str(tmp_path / "out"), "--prompt", "red lipstick",
                              "--strength", *strength.split()], capture_output=True, text=True, timeout=300)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("prompt, words", [("zorblax quux", "names no makeup product"), ("x" * 10_000, "characters long"),
                                           ("🙂💄", "no words"), ("  ", "empty")])
def test_bad_prompts_fail_at_once_with_one_line(tmp_path, prompt, words):
    exe = Path(sys.executable).with_name("c2p")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from c2p.cli import run; run()"]
    r = subprocess.run(cmd + ["protect", str(BIDEN), "--out", str(tmp_path / "out"), "--prompt", prompt],
                       capture_output=True, text=True, timeout=300)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_face_whose_landmarks_fail_gets_one_message_and_nothing_is_written(models, tmp_path):
    # a face tilted by 45 degrees: MTCNN still finds it, dlib's 68-point predictor (trained upright) cannot place it
    src = tmp_path / "sideways.png"
    Image.open(OBAMA).convert("RGB").rotate(45, expand=True, fillcolor=(128, 128, 128)).save(src)
    logs = []
    statuses = protect_files([src], tmp_path / "out", "red lipstick", models=models, progress=False, log=logs.append)
    assert statuses[0]["status"] == "failed" and "landmarks" in statuses[0]["message"], statuses
    assert not list((tmp_path / "out").glob("sideways*"))


@pytest.mark.shared
def test_no_shared_face_is_taken_for_a_covered_one():
    "Chapter 8c's occluder check on every real face c2p has: bare faces keep all their products (red lips are not a mask)."
    from c2p.cosmetics import face_fields
    from c2p.faces import align_face, pil_to_tensor
    from c2p.occlusion import find_occlusion
    seen = 0
    for p in sorted(FACES.glob("*/*.jpg")):
        image = load_photo(p).image
        for face in detect_faces(image, landmarks68=True):
            al = align_face(image, face, size=256)
            occ = find_occlusion((pil_to_tensor(al.image) + 1) / 2, al.to_aligned(face.landmarks68))
            assert occ.covered == {}, (p.name, occ.covered, occ.scores)
            seen += 1
    assert seen >= 12
