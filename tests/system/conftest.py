# conftest.py: makes pvtest importable from every system test and provides the `device` fixture,
# whose finalizer cleans up even when the test failed.
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pvtest  # noqa: E402


@pytest.fixture
def device(request):
    d = pvtest.Device(request.node.name[:12].replace("[", "_").replace("]", "_"))
    request.addfinalizer(d.cleanup)
    return d
