"""Exports of a case for other tools and for people.

- :func:`to_prism` (:mod:`pgverify.export.prism`): the Markov chain that the
  policy induces, as a parametric DTMC in the PRISM language, whose expected total
  reward ``R{"r"}=? [ F "done" ]`` is J(theta);
- :func:`to_dot`, :func:`to_png` (:mod:`pgverify.export.show`): a drawing of the MDP;
- the commands ``pgverify export`` and ``pgverify show`` (:mod:`pgverify.export.cli`).
"""
from .errors import ExportError, MissingExtraError
from .prism import PROPERTY, induced_chain, prism_expression, to_prism
from .show import to_dot, to_graph, to_png

__all__ = ["ExportError", "MissingExtraError", "PROPERTY", "induced_chain", "prism_expression", "to_prism",
           "to_dot", "to_graph", "to_png"]
