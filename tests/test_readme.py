"""README.md is the front page of nbs/index.ipynb, and CI runs exactly the test command it gives."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Test\s+```sh\n(.+?)\n```", readme, re.S).group(1)
    command = block.split("#")[0].strip()
    assert command == "bash tools/test.sh"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if not line.lstrip().startswith("#")]
    assert f"C2P_SHARED=none {command}" in ci  # as on a fresh clone: without the developers' ../shared
    later = ci[ci.index(f"C2P_SHARED=none {command}"):]  # then the opt-ins: what needs ../shared, and the slow tests
    assert any(l.startswith("C2P_SLOW=1 python -m pytest") and '-m "shared or slow"' in l for l in later), later


def _python_blocks(readme: str) -> list[str]:
    return re.findall(r"```python\n(.+?)\n```", readme, re.S)


def test_first_python_example_runs_anywhere_and_the_paper_one_says_what_it_needs():
    readme = (ROOT / "README.md").read_text()
    first, *rest = _python_blocks(readme)
    assert "protect(" in first and "preset=" not in first, first  # the default preset: makeup, offline, on a CPU
    paper = next(b for b in rest if 'preset="paper"' in b)
    before = readme[: readme.index(paper)].rsplit("```", 1)[0][-400:]  # the words just above the paper example
    assert "checkpoints" in before and "GPU" in before, before


def test_install_documents_the_cpu_only_wheels_after_the_plain_command():
    install = re.search(r"## Install\n(.+?)\n## ", (ROOT / "README.md").read_text(), re.S).group(1)
    plain, cpu = install.index('pip install -e ".[dev]"'), install.index("--index-url https://download.pytorch.org/whl/cpu")
    assert plain < cpu and "GB" in install[max(0, cpu - 600): cpu]


def test_readme_follows_index():
    readme = (ROOT / "README.md").read_text()
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            plain = re.sub(r"\]\((?=images/|\d)", "](nbs/", line)  # README links point into nbs/
            assert plain in readme, f"README.md is out of step with nbs/index.ipynb: {line!r}"
