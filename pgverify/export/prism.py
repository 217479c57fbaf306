"""The Markov chain a policy induces, as a parametric DTMC in the PRISM language.

For a case with policy pi_theta, the induced chain has (Puterman 1994, sec. 2.1.6;
Sutton & Barto 2018, eq. 3.4 and 3.5)

.. math::

    P_\\pi(s' \\mid s) = \\sum_a \\pi_\\theta(a \\mid s) P(s' \\mid s, a), \\qquad
    r_\\pi(s) = \\sum_a \\pi_\\theta(a \\mid s) \\sum_{s'} P(s' \\mid s, a)\\, r(s, a, s'),

and :math:`J(\\theta) = E[\\sum_t \\gamma^t r_\\pi(s_t)]`, because the expected
reward of step t given s_t is r_pi(s_t).  :func:`to_prism` writes that chain so
that **J is the expected total reward until the label "done"**,
``R{"r"}=? [ F "done" ]`` from the single initial state, with no discounting left
for the model checker to do:

- *start distribution*: when rho0 is not one state with probability 1, a fresh
  state ``init`` moves to s with probability rho0(s) and earns nothing, so the
  expected total reward from it is sum_s rho0(s) V(s) = J.  It takes no time
  (the step counter stays 0) and is not discounted.
- *discount* gamma < 1: every step of a non-terminal state goes on as in the
  chain with probability gamma and to an absorbing state ``stop`` (labelled
  "done") with probability 1 - gamma.  The chain is still alive after t steps
  with probability gamma^t, independently of where it is, so the expected total
  reward is sum_t gamma^t E[r_pi(s_t)] = J.  (Storm and PRISM compute undiscounted
  expected total rewards for DTMCs; this is the usual geometric-stopping
  encoding of a discount, Puterman 1994, sec. 5.3.)
- *horizon* H: a step counter ``t : [0..H]`` is added; a non-terminal state earns
  its reward and moves only while t < H, and every state with t = H is "done".
  The model checker unrolls (s, t) itself, so the text stays as short as the case.
- terminal states are absorbing, earn nothing and are "done".

Only rational functions of the parameters with rational coefficients can be
written: parametric model checkers (Storm, PRISM's parametric engine) represent
probabilities and rewards as such.  A policy, transition, reward, start or
discount with ``exp``, ``log``, ``sqrt`` of a parameter, or an irrational number,
is an :class:`~pgverify.export.errors.ExportError` that names every such place.

Examples
--------
>>> import pgverify
>>> case = pgverify.Case.from_dict({
...     "name": "coin", "parameters": {"p": "1/3"},
...     "states": ["S", "G"], "terminal": ["G"], "actions": ["stop", "go"],
...     "start": "S", "policy": {"S": {"stop": "1 - p", "go": "p"}},
...     "transitions": {"S": {"stop": "G", "go": "G"}}, "rewards": {"S": {"go": 2}}})
>>> print(prism_expression(induced_chain(case).reward["S"]))
2*p
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sympy

from ..errors import Problem
from ..model import Case
from .errors import ExportError

__all__ = ["InducedChain", "induced_chain", "prism_expression", "to_prism", "PRISM_KEYWORDS",
           "DONE_LABEL", "REWARD_NAME", "PROPERTY"]

#: The label of the absorbing states (terminal, discount stop, horizon reached).
DONE_LABEL = "done"
#: The name of the reward structure.
REWARD_NAME = "r"
#: The property whose value at the initial state is J(theta).
PROPERTY = f'R{{"{REWARD_NAME}"}}=? [ F "{DONE_LABEL}" ]'

#: Keywords of the PRISM language (PRISM manual, "Constants", reserved words), plus
#: the names Storm's parser reserves; a parameter cannot be called like this.
PRISM_KEYWORDS = frozenset("""
A bool clock const ctmc C double dtmc E endinit endinvariant endmodule endobservables endrewards
endsystem false formula filter func F global G init invariant I int label max mdp min module X
nondeterministic observable observables of Pmax Pmin P pomdp popta probabilistic prob pta rate
rewards Rmax Rmin R S stochastic system true U W ceil floor pow mod log round
""".split())


@dataclass
class InducedChain:
    """The chain a policy induces: rows P_pi(.|s), rewards r_pi(s), the start distribution.

    All entries are sympy expressions in the case's parameters, simplified with
    :func:`sympy.cancel`; zero entries are left out.
    """

    case: Case
    transitions: dict = field(default_factory=dict)  # s -> {s_next: P_pi(s_next|s)}
    reward: dict = field(default_factory=dict)  # s -> r_pi(s) (non-zero only)
    start: dict = field(default_factory=dict)  # s -> rho0(s)


class _NotRational(Exception):
    def __init__(self, part: sympy.Expr):
        self.part = part


def _check_rational(expr: sympy.Expr, parameters) -> None:
    """Raise :class:`_NotRational` naming the first part of ``expr`` outside Q(theta)."""
    if isinstance(expr, sympy.Symbol):
        if expr not in parameters:
            raise _NotRational(expr)
        return
    if expr.is_Rational:
        return
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        for arg in expr.args:
            _check_rational(arg, parameters)
        return
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer:
        _check_rational(expr.base, parameters)
        return
    raise _NotRational(expr)


def _why(part: sympy.Expr) -> str:
    if part.is_number:
        return f"not a rational function: the number {part} is not rational"
    if isinstance(part, sympy.Pow):
        return f"not a rational function: the power {part} has an exponent that is not an integer"
    if isinstance(part, sympy.Function):
        return f"not a rational function: it uses {part.func.__name__}"
    return f"not a rational function: {part}"


# -- printing -----------------------------------------------------------------
_ADD, _MUL, _NEG, _POW, _ATOM = 1, 2, 3, 4, 5


def _wrap(text_prec, at_least: int) -> str:
    text, prec = text_prec
    return text if prec >= at_least else f"({text})"


def _negate(text_prec) -> str:
    """Unary minus, with parentheses unless the operand starts with a number or a name that is not raised
    to a power: Storm 2.0's PRISM parser reads ``-p^2`` as ``(-p)^2``, so ``-(p^2)`` is written."""
    text, prec = text_prec
    m = re.match(r"[\w.]+", text)
    if prec >= _MUL and m and not text[m.end():].startswith("^"):
        return "-" + text
    return f"-({text})"


def _print(expr: sympy.Expr):
    """(text, precedence) of a rational function in PRISM syntax (``* / ^``, names as given)."""
    if expr.is_Integer:
        return (str(int(expr)), _ATOM) if expr >= 0 else (str(int(expr)), _NEG)
    if expr.is_Rational:
        text = f"{abs(expr.p)}/{expr.q}"
        return (text, _MUL) if expr > 0 else ("-" + text, _NEG)
    if isinstance(expr, sympy.Symbol):
        return expr.name, _ATOM
    if isinstance(expr, sympy.Add):
        terms = expr.as_ordered_terms()
        out = _wrap(_print(terms[0]), _ADD)
        for term in terms[1:]:
            if term.could_extract_minus_sign():
                out += " - " + _wrap(_print(-term), _MUL)
            else:
                out += " + " + _wrap(_print(term), _MUL)
        return out, _ADD
    if isinstance(expr, sympy.Mul):
        if expr.could_extract_minus_sign():
            return _negate(_print(-expr)), _NEG
        num, den = sympy.fraction(expr)
        if den != 1:
            left = _wrap(_print(num), _MUL)
            return f"{left}/{_wrap(_print(den), _POW)}", _MUL
        factors = expr.as_ordered_factors()
        return "*".join(_wrap(_print(f), _POW if f.is_Rational else _MUL) for f in factors), _MUL
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer:
        if expr.exp < 0:
            return f"1/{_wrap(_print(expr.base ** -expr.exp), _POW)}", _MUL
        return f"{_wrap(_print(expr.base), _ATOM)}^{int(expr.exp)}", _POW
    raise _NotRational(expr)


def prism_expression(expr: sympy.Expr) -> str:
    """A rational function in the PRISM language: ``+ - * /``, ``^`` with integer exponents.

    The expression is first brought to one fraction (:func:`sympy.cancel`).

    Examples
    --------
    >>> p, q = sympy.symbols("p q")
    >>> prism_expression(1 - p)
    '1 - p'
    >>> prism_expression(p**2 / (2 - q) - sympy.Rational(1, 3))
    '(-3*p^2 - q + 2)/(3*(q - 2))'
    >>> prism_expression(-p**2)
    '-(p^2)'
    """
    expr = sympy.cancel(sympy.together(expr))
    num, den = sympy.fraction(expr)
    num, den = _shortest(num), _shortest(den)
    if den == 1:
        return _print(num)[0]
    if not isinstance(num, sympy.Add) and num.could_extract_minus_sign():
        return _negate((f"{_wrap(_print(-num), _ATOM)}/{_wrap(_print(den), _ATOM)}", _MUL))
    return f"{_wrap(_print(num), _ATOM)}/{_wrap(_print(den), _ATOM)}"


def _shortest(poly: sympy.Expr) -> sympy.Expr:
    """The polynomial as written by :func:`sympy.factor_terms` or :func:`sympy.factor`, whichever is shorter."""
    forms = [sympy.factor_terms(poly)]
    if sympy.count_ops(poly) < 200:  # factoring is for reading only; skip it on long polynomials
        forms.append(sympy.factor(poly))
    return min(forms, key=lambda f: len(_print(f)[0]))


# -- the chain ----------------------------------------------------------------
def _sources(case: Case):
    """Every expression the chain is built from: (key path, line, expression)."""
    lines = case.lines
    for s, value in case.rho0.items():
        yield f"start.{s}", lines.get(f"start.{s}", lines.get("start")), value
    yield "discount", lines.get("discount"), case.gamma
    for s in case.nonterminal:
        for a, value in case.pi[s].items():
            key = f"policy.{s}.{a}"
            if case.policy_form == "deterministic":
                key = f"policy.deterministic.{s}"
            line = lines.get(key, lines.get(f"policy.{s}", lines.get("policy")))
            yield key, line, value
        for a in case.actions[s]:
            if not case.pi[s].get(a, 0):
                continue
            for s2, value in case.P[s][a].items():
                key = f"transitions.{s}.{a}.{s2}" if case.policy_form != "deterministic" else f"transitions.{s}.{s2}"
                line = lines.get(key, lines.get(f"transitions.{s}.{a}", lines.get(f"transitions.{s}")))
                yield key, line, value
            for s2, value in case.r[s][a].items():
                if s2 not in case.P[s][a]:
                    continue
                key, line = case.reward_keys.get((s, a, s2), (f"rewards.{s}", None))
                yield key, line, value


def induced_chain(case: Case) -> InducedChain:
    """P_pi, r_pi and rho0 of ``case``, after checking that every input is a rational function.

    Raises
    ------
    ExportError
        When a probability, reward, start probability or the discount is not a
        rational function of the parameters with rational coefficients; one
        problem per place, with what it uses and how to fix it.
    """
    params = set(case.parameters)
    problems: list[Problem] = []
    seen = set()
    for key, line, value in _sources(case):
        try:
            _check_rational(value, params)
        except _NotRational as exc:
            if (key, line) in seen:
                continue
            seen.add((key, line))
            problems.append(Problem(_why(exc.part), key=key, line=line, given=str(value)))
    if problems:
        n = len(problems)
        raise ExportError(
            f"cannot export case {case.name!r} to PRISM: {n} expression"
            f"{'s are not rational functions' if n != 1 else ' is not a rational function'} of the parameters, "
            "and parametric PRISM models need rational functions",
            problems, case.source,
            hint="How to fix: write the policy explicitly, with probabilities that are rational functions "
                 "of the parameters (a softmax or sigmoid is not: use p in place of sigmoid(theta)), and keep "
                 "exp, log and sqrt of parameters out of transitions and rewards.")
    chain = InducedChain(case)
    for s in case.nonterminal:
        row: dict = {}
        reward = sympy.Integer(0)
        for a, pa in case.pi[s].items():
            for s2, prob in case.P[s][a].items():
                row[s2] = row.get(s2, 0) + pa * prob
                reward += pa * prob * case.r[s][a].get(s2, 0)
        chain.transitions[s] = {s2: e for s2, e in ((s2, sympy.cancel(e)) for s2, e in row.items()) if e != 0}
        reward = sympy.cancel(reward)
        if reward != 0:
            chain.reward[s] = reward
    chain.start = {s: sympy.cancel(v) for s, v in case.rho0.items() if sympy.cancel(v) != 0}
    return chain


def _comment(text: str) -> str:
    return " ".join(str(text).split())


def _fresh(name: str, taken: set) -> str:
    while name in taken:
        name += "_"
    return name


def to_prism(case: Case) -> str:
    """The chain that ``case``'s policy induces, as a parametric DTMC in the PRISM language.

    ``R{"r"}=? [ F "done" ]`` at the initial state is J(theta) (see the module
    docstring for the encoding of the start distribution, the discount and the
    horizon).  Each parameter is an undefined ``const double``; the state variable
    numbers the case's states in order (non-terminal first), as the comments say.

    Raises
    ------
    ExportError
        For expressions that are not rational functions of the parameters, and for
        parameter names that are PRISM keywords.
    """
    from .. import __version__

    names = case.parameter_names
    clash = [n for n in names if n in PRISM_KEYWORDS]
    if clash:
        raise ExportError(
            f"cannot export case {case.name!r} to PRISM: parameter name(s) reserved in PRISM",
            [Problem(f"{n!r} is a keyword of the PRISM language", key=f"parameters.{n}",
                     line=case.lines.get(f"parameters.{n}"), hint="Rename the parameter") for n in clash],
            case.source)
    chain = induced_chain(case)
    gamma = case.gamma
    discounted = gamma != 1
    H = case.horizon
    taken = set(names)
    svar = _fresh("s", taken)
    tvar = _fresh("t", taken | {svar})
    module = _fresh("policy_chain", taken)

    nonterminal = [s for s in case.states if s not in case.terminal]
    terminal = [s for s in case.states if s in case.terminal]
    index = {s: i for i, s in enumerate(nonterminal + terminal)}
    last = len(index) - 1
    stop = init = None
    if discounted:
        last += 1
        stop = last
    single_start = len(chain.start) == 1 and next(iter(chain.start.values())) == 1
    if single_start:
        init_index = index[next(iter(chain.start))]
    else:
        last += 1
        init = init_index = last
    n_nonterminal = len(nonterminal)

    def goto(j: int) -> str:
        return f"({svar}'={j})" + (f"&({tvar}'={tvar}+1)" if H is not None else "")

    def live(i: int) -> str:
        return f"{svar}={i}" + (f" & {tvar}<{H}" if H is not None else "")

    out = []
    origin = f" ({case.source})" if case.source else ""
    out.append(f"// pgverify {__version__}: the Markov chain that the policy of case "
               f"'{_comment(case.name)}'{origin} induces.")
    out.append("// P_pi(s'|s) = sum_a pi(a|s) P(s'|s,a); state reward r_pi(s) = sum_a pi(a|s) sum_s' P(s'|s,a) r(s,a,s').")
    out.append(f"// J(theta) = {PROPERTY} at the initial state.")
    if not single_start:
        out.append(f"// The start distribution: the fresh initial state {init} moves by rho0 at no reward, taking no time.")
    if discounted:
        out.append(f"// Discount gamma = {gamma}: each step goes on with probability gamma and stops (state {stop}) "
                   "with 1 - gamma,")
        out.append("// so the undiscounted total reward of this chain is the discounted return of the case.")
    if H is not None:
        out.append(f"// Horizon {H}: {tvar} counts the steps; rewards are earned while {tvar}<{H}, "
                   f"and {tvar}={H} is \"{DONE_LABEL}\".")
    out.append("")
    out.append("dtmc")
    out.append("")
    if names:
        point = ", ".join(f"{p.name} = {case.point[p]}" for p in case.parameters)
        out.append(f"// parameters theta (the case's point: {_comment(point)})")
        for n in names:
            out.append(f"const double {n};")
        out.append("")
    out.append(f"module {module}")
    legend = [f"{i}={_comment(s)}" + (" (terminal)" if s in case.terminal else "") for s, i in index.items()]
    if stop is not None:
        legend.append(f"{stop}=stop (discount)")
    if init is not None:
        legend.append(f"{init}=init (start distribution)")
    out.append(f"  // {', '.join(legend)}")
    out.append(f"  {svar} : [0..{last}] init {init_index};")
    if H is not None:
        out.append(f"  {tvar} : [0..{H}] init 0;")
    for s in nonterminal:
        row = chain.transitions[s]
        parts = []
        for s2, prob in sorted(row.items(), key=lambda kv: index[kv[0]]):
            prob = gamma * prob if discounted else prob
            parts.append(f"{_wrap_update(prism_expression(prob))}:{goto(index[s2])}")
        if discounted:
            parts.append(f"{_wrap_update(prism_expression(1 - gamma))}:{goto(stop)}")
        out.append(f"  [] {live(index[s])} -> {' + '.join(parts)}; // {_comment(s)}")
    for s in terminal:
        out.append(f"  [] {svar}={index[s]} -> true; // {_comment(s)} (terminal)")
    if stop is not None:
        out.append(f"  [] {svar}={stop} -> true; // stop (discount)")
    if H is not None and nonterminal:
        out.append(f"  [] {svar}<{n_nonterminal} & {tvar}={H} -> true; // horizon reached")
    if init is not None:
        parts = [f"{_wrap_update(prism_expression(v))}:({svar}'={index[s]})"
                 for s, v in sorted(chain.start.items(), key=lambda kv: index[kv[0]])]
        out.append(f"  [] {svar}={init} -> {' + '.join(parts)}; // init (start distribution)")
    out.append("endmodule")
    out.append("")
    done = []
    if terminal or stop is not None:
        hi = n_nonterminal + len(terminal) - 1 + (1 if stop is not None else 0)
        done.append(f"{svar}={hi}" if hi == n_nonterminal else f"({svar}>={n_nonterminal} & {svar}<={hi})")
    if H is not None:
        done.append(f"{tvar}={H}")
    out.append(f"label \"{DONE_LABEL}\" = {' | '.join(done) if done else 'false'};")
    out.append("")
    out.append(f"rewards \"{REWARD_NAME}\"")
    for s in nonterminal:
        if s in chain.reward:
            out.append(f"  {live(index[s])} : {prism_expression(chain.reward[s])}; // {_comment(s)}")
    out.append("endrewards")
    return "\n".join(out) + "\n"


def _wrap_update(text: str) -> str:
    """A probability in an update: bare when it is one name or number, in parentheses otherwise."""
    return text if text.replace("_", "").isalnum() else f"({text})"
