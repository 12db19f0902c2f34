"""`python -m c2p.bench` as a user runs it: the last line's format, and bad subcommands."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args):
    return subprocess.run([sys.executable, "-m", "c2p.bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_generator_bench_prints_last_line():
    r = _run("generator", "--size", "32", "--warmup", "0", "--iters", "1")
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"generator 32 fwd\+bwd: (\d+\.\d\d) s/step, (\d+\.\d)% of matmul peak", last)
    assert m, last
    assert float(m.group(1)) > 0 and float(m.group(2)) > 0
    assert "GFLOP of conv/matmul per step" in r.stdout


def test_unknown_subcommand_is_an_argparse_error():
    r = _run("nonsense")
    assert r.returncode == 2 and "invalid choice" in r.stderr and "Traceback" not in r.stderr
