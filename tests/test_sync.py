"""The exported library must be exactly what nbdev_export makes from the notebooks."""
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tree(d):
    return sorted(p.relative_to(d) for p in d.rglob("*.py") if "__pycache__" not in p.parts)


def test_export_leaves_library_unchanged(tmp_path):
    for name in ("settings.ini", "setup.py"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "c2p", tmp_path / "c2p", ignore=shutil.ignore_patterns("__pycache__"))
    exe = Path(sys.executable).parent / "nbdev_export"
    subprocess.run([str(exe) if exe.exists() else "nbdev_export"], cwd=tmp_path, check=True, capture_output=True)
    before, after = ROOT / "c2p", tmp_path / "c2p"
    assert _tree(before) == _tree(after), "nbdev_export would add or remove modules: run nbdev_export and commit"
    changed = [str(p) for p in _tree(before) if not filecmp.cmp(before / p, after / p, shallow=False)]
    assert not changed, f"nbdev_export would change {changed}: edit the notebooks, run nbdev_export, commit"
