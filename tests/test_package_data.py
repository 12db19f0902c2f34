"""The sample photos travel with the package: an installed c2p (pip, Colab) has them without a checkout."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_installed_wheel_has_the_sample_photos(tmp_path):
    wheels, target, outside = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    outside.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, capture_output=True)
    wheel = next(wheels.glob("c2p-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {"c2p/data/obama_official_portrait.jpg", "c2p/data/biden_official_portrait.jpg", "c2p/data/prompts.txt"} <= set(names)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    # import from the installed copy only: run outside the checkout, the install first on the path, no ../shared
    code = """
import c2p, c2p.core, c2p.faces
from pathlib import Path
assert Path(c2p.__file__).resolve().is_relative_to(Path(TARGET).resolve()), c2p.__file__
assert c2p.core.shared_dir() is None and c2p.core.repo_dir() is None
photos = c2p.faces.sample_photos()
assert [p.name for p in photos] == ["biden_official_portrait.jpg", "obama_official_portrait.jpg"], photos
assert c2p.faces.sample_photo("obama").is_file() and len(c2p.faces.example_prompts()) == 12
assert len(c2p.faces.detect_faces(c2p.faces.sample_photo("biden"))) == 1
print("ok", photos[0])
""".replace("TARGET", repr(str(target)))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "C2P_SHARED": str(tmp_path / "no-shared"),
           "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], cwd=outside, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok ") and str(target) in r.stdout
