"""pytest plugin: the helpers of :mod:`pgverify.testing` as fixtures.

Registered through the ``pytest11`` entry point when pgverify is installed; without it, load it
with ``pytest -p pgverify.testing.plugin`` or ``pytest_plugins = ["pgverify.testing.plugin"]`` in
the top-level ``conftest.py``.

Fixtures
--------
``pgverify_case``
    A factory: ``pgverify_case(case, at=None)`` returns a validated :class:`pgverify.Case`.  A
    relative path is looked up next to the test file first, then under pytest's rootdir.
``pgv``
    The helpers, with the case argument resolved the same way and the seed of ``assert_unbiased``
    taken from ``--pgverify-seed`` when the test gives none: ``pgv.exact_gradient``,
    ``pgv.exact_objective``, ``pgv.assert_gradient_close``, ``pgv.assert_unbiased`` and ``pgv.case``
    (the factory above).  (Not named ``pgverify``, which would hide the package inside the test.)

Option
------
``--pgverify-seed N``
    The seed of every ``pgv.assert_unbiased`` call that passes none (default 0).  Running the
    suite with another seed shows that a pass does not depend on a lucky seed; at the default
    alpha = 1e-4 an unbiased estimator still fails for about 1 seed in 10,000.

The module imports only pytest; pgverify itself is imported when a fixture is first used.
"""
from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["Helpers", "pgv", "pgverify_case", "pytest_addoption"]

DEFAULT_SEED = 0


def pytest_addoption(parser):
    group = parser.getgroup("pgverify", "pgverify.testing (exact policy gradients)")
    group.addoption("--pgverify-seed", action="store", type=int, default=None, metavar="N",
                    help=f"seed of pgv.assert_unbiased calls that give none (default {DEFAULT_SEED})")


def _resolve_path(case, test_dir: Path, rootdir: Path):
    """A relative path of a case file, next to the test file first, then under the rootdir."""
    if not isinstance(case, (str, Path)) or Path(case).is_absolute():
        return case
    for base in (test_dir, rootdir):
        candidate = base / case
        if candidate.exists():
            return candidate
    return case  # load_case reports "file not found" with the path as given


class Helpers:
    """The helpers of :mod:`pgverify.testing`, bound to one test (see the module docstring)."""

    def __init__(self, test_dir: Path, rootdir: Path, seed: int):
        self._test_dir, self._rootdir, self.seed = test_dir, rootdir, seed

    def _case(self, case):
        return _resolve_path(case, self._test_dir, self._rootdir)

    def case(self, case, at=None):
        from pgverify.testing.gradient import resolve_case

        return resolve_case(self._case(case), at)

    def exact_gradient(self, case, at=None):
        from pgverify.testing import exact_gradient

        return exact_gradient(self._case(case), at)

    def exact_objective(self, case, at=None):
        from pgverify.testing import exact_objective

        return exact_objective(self._case(case), at)

    def assert_gradient_close(self, actual, case, at=None, **tolerances):
        from pgverify.testing import assert_gradient_close

        return assert_gradient_close(actual, self._case(case), at, **tolerances)

    def assert_unbiased(self, estimator, case, at=None, *, seed=None, **options):
        from pgverify.testing import assert_unbiased

        return assert_unbiased(estimator, self._case(case), at, seed=self.seed if seed is None else seed, **options)


def _helpers(request) -> Helpers:
    seed = request.config.getoption("pgverify_seed", default=None)  # absent when loaded late
    return Helpers(Path(request.path).parent, Path(request.config.rootpath),
                   DEFAULT_SEED if seed is None else seed)


@pytest.fixture
def pgv(request) -> Helpers:
    """The helpers of pgverify.testing, with --pgverify-seed as the default seed."""
    return _helpers(request)


@pytest.fixture
def pgverify_case(request):
    """Factory: ``pgverify_case(path_or_dict, at=None)`` -> a validated pgverify.Case."""
    return _helpers(request).case
