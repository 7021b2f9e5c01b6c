"""pytest configuration: hypothesis profiles and markers.

Hypothesis profiles (tests/test_fuzz.py): "ci" (the default; >= 500 examples per op, the
whole file in about two minutes on 2 cores) and "long" (``--hypothesis-profile=long``,
5,000 examples per op, for a deeper search before a release).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # `from helpers import ...` in every test file

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test dependency; without it test_fuzz.py skips itself
    pass
else:
    _common = dict(deadline=None, derandomize=False, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("ci", max_examples=500, **_common)
    settings.register_profile("long", max_examples=5000, **_common)
    settings.load_profile("ci")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test that takes more than ~20 s (CI still runs it)")
