#!/usr/bin/env bash
# The whole test suite: every notebook (nbdev_test), then tests/ (pytest, which also checks that
# nbdev_export would leave c2p/ unchanged). Run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# cells marked `#| ray` (chapter 9b) need Ray (pip install 'c2p[ray]'): run them where it is installed
if python -c "import ray" 2>/dev/null; then nbdev_test --n_workers 2 --timing --flags ray; else nbdev_test --n_workers 2 --timing; fi
python -m pytest -q tests
echo "tools/test.sh: all tests passed in $(( $(date +%s) - start )) s"
