#!/usr/bin/env bash
# The test suite: every notebook (nbdev_test), then tests/ (pytest, which also checks that nbdev_export would leave c2p/
# unchanged). Run from the repository root. Needs nothing beside the checkout: tests that need the developers' photos
# (../shared, marker `shared`) skip, saying so, when it is missing (or hidden with C2P_SHARED=none).
#   C2P_SLOW=1 bash tools/test.sh    # also the tests and notebook cells marked `slow` (minutes each; CI runs them in its
#                                    # second pass)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# One notebook at a time: chapters 3 and 4 run torch on two threads each, and two of them at once on two cores took
# 4x longer (04_finetuning 1393 s instead of 72 s, the whole notebook pass 1599 s instead of about 750 s).
# Cells marked `#| ray` (chapter 9b) need Ray (pip install 'c2p[ray]'): run them where it is installed. Cells marked
# `#| slow` (minutes each: the index's six searches, chapter 8b's grid, 8c's covered faces) run with C2P_SLOW=1.
flags=""
if python -c "import ray" 2>/dev/null; then flags="ray"; fi
if [ "${C2P_SLOW:-}" = 1 ]; then flags="$flags slow"; fi
nbdev_test --n_workers 1 --timing ${flags:+--flags "$flags"}
echo "tools/test.sh: notebooks passed in $(( $(date +%s) - start )) s"
python -m pytest -q --durations=15 tests
echo "tools/test.sh: all tests passed in $(( $(date +%s) - start )) s"
