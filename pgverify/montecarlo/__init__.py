"""Monte Carlo: a vectorised sampler at the parameter point, and the estimators it checks."""
from .sampler import Episodes, sample
from .tabular import TabularMDP, tabulate

__all__ = ["Episodes", "TabularMDP", "sample", "tabulate"]
