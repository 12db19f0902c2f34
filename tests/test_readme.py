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
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in [line.strip() for line in ci if not line.lstrip().startswith("#")]


def test_readme_follows_index():
    readme = (ROOT / "README.md").read_text()
    nb = json.loads((ROOT / "nbs" / "index.ipynb").read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            plain = re.sub(r"\]\((?=images/|\d)", "](nbs/", line)  # README links point into nbs/
            assert plain in readme, f"README.md is out of step with nbs/index.ipynb: {line!r}"
