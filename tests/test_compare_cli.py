"""`c2p compare`: one line per face-recognition model, real dlib weights, clear errors for bad input."""
import re

import numpy as np
import pytest
from PIL import Image

from c2p.cli import main
from c2p.core import shared_dir

FACES = shared_dir() / "faces" if shared_dir() else None
pytestmark = pytest.mark.shared


@pytest.fixture(autouse=True)
def offline_cache(tmp_path, monkeypatch):
    "An empty weights cache and no network: only dlib (shipped in face_recognition_models) has weights."
    monkeypatch.setenv("C2P_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("C2P_OFFLINE", "1")


def _run(capsys, *argv):
    rc = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def _dlib_distance(out):
    line = next(l for l in out.splitlines() if l.startswith("dlib"))
    return float(re.search(r"distance ([0-9.]+)", line).group(1)), line


def test_same_person_under_dlib_threshold(capsys):
    rc, out, err = _run(capsys, FACES / "obama/obama_official_portrait.jpg", FACES / "obama/obama_press_room.jpg",
                        "--models", "dlib")
    assert rc == 0, err
    d, line = _dlib_distance(out)
    assert d < 0.6 and line.endswith("same person") and "threshold 0.6" in line
    assert len(out.splitlines()) == 1


def test_different_people_and_missing_weights(capsys):
    rc, out, err = _run(capsys, FACES / "obama/obama_official_portrait.jpg", FACES / "biden/biden_official_portrait.jpg",
                        "--models", "dlib,irse50", "--far", "0.001", "--offline")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("dlib")
    d, line = _dlib_distance(out)
    assert d > 0.6 and line.endswith("different people")
    assert lines[1].startswith("irse50: weights not in the cache") and "c2p weights download amtgan-irse50" in lines[1]


def test_unknown_model_is_one_line_error(capsys):
    rc, out, err = _run(capsys, FACES / "obama/obama_official_portrait.jpg", FACES / "biden/biden_official_portrait.jpg",
                        "--models", "dlib,arcface")
    assert rc == 2 and out == ""
    assert err.startswith("c2p compare: error:") and "arcface" in err and "irse50" in err and "Traceback" not in err


def test_bad_far(capsys):
    rc, out, err = _run(capsys, FACES / "obama/obama_official_portrait.jpg", FACES / "biden/biden_official_portrait.jpg",
                        "--models", "dlib", "--far", "0.05")
    assert rc == 2 and "--far" in err


def test_missing_photo_and_photo_without_face(capsys, tmp_path):
    rc, out, err = _run(capsys, tmp_path / "nope.jpg", FACES / "obama/obama_official_portrait.jpg", "--models", "dlib")
    assert rc == 2 and err.startswith("c2p compare: error:") and "Traceback" not in err
    blank = tmp_path / "wall.jpg"
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(blank)
    rc, out, err = _run(capsys, blank, FACES / "obama/obama_official_portrait.jpg", "--models", "dlib")
    assert rc == 2 and "no face" in err.lower() and out == ""
