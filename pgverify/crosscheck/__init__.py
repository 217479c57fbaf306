"""Cross-checks of pgverify's results with other tools (optional extras).

- :func:`storm_cross_check` (:mod:`pgverify.crosscheck.storm`, extra ``storm``):
  J(theta) from Storm's parametric model checker, compared exactly.

The tool itself is imported only when a cross-check runs, so importing this
package needs no extra.
"""
from .storm import CrossCheckError, storm_cross_check

__all__ = ["CrossCheckError", "storm_cross_check"]
