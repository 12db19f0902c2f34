"""Fixtures shared by the test modules, and the two opt-in markers.

- `shared`: needs the developers' photos (`../shared/faces`); skipped, saying so, when `c2p.core.shared_dir()` finds
  none (a fresh clone, or `C2P_SHARED=none`, which CI's first pass sets).
- `slow`: minutes of CPU each; skipped unless `C2P_SLOW=1` (CI's second pass sets it).
"""
import os

import pytest
import torch

from c2p.core import shared_dir


def pytest_configure(config):
    config.addinivalue_line("markers", "shared: needs the developers' photos in ../shared/faces (skipped without them)")
    config.addinivalue_line("markers", "slow: takes minutes; runs only with C2P_SLOW=1 (CI's second pass)")


def pytest_collection_modifyitems(config, items):
    no_shared = shared_dir() is None
    slow_ok = os.environ.get("C2P_SLOW") == "1"
    for item in items:
        if no_shared and "shared" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs the developers' photos (../shared/faces; C2P_SHARED=none hides them)"))
        if not slow_ok and "slow" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="slow: runs with C2P_SLOW=1 (CI's second pass)"))


@pytest.fixture(scope="module")
def one_torch_thread():
    "Run a module's model work on one torch thread (CI runs on two cores), then restore the setting."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
