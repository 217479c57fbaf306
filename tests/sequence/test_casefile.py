"""Sequence case files: every validation error, with its exact message (what, where, given, how to fix)."""
from __future__ import annotations

import pytest
import sympy

import pgverify
from pgverify.sequence.casefile import MAX_PREFIXES, MAX_TOKEN_STEPS

BASE = """name: s
kind: sequence
parameters: {w: 0}
prompts: {x: 1/2, y: 1/2}
vocabulary: [A, B]
max_length: 2
logits: {A: w}
reward: {A.eos: 1}
"""


def message(text: str) -> str:
    with pytest.raises(pgverify.CaseFileError) as info:
        pgverify.case_from_yaml(text, source="s.yaml")
    return str(info.value)


BAD = {
    'unknown field': (BASE + "colour: red\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: colour: unknown field 'colour' (given: 'colour'). Fields of a sequence case: name, kind, description, parameters, constants, prompts, vocabulary, eos, max_length, answers, logits, reward, reference, beta, stale, clip"),
    'kind': (BASE.replace("kind: sequence", "kind: sequnce"),
     "invalid case s.yaml: 1 problem\n  s.yaml:2: kind: unknown case kind 'sequnce' (given: 'sequnce'). Write 'kind: sequence' for a sequence case, or leave 'kind' out for an MDP"),
    'missing': ("name: s\nkind: sequence\n",
     "invalid case s.yaml: 4 problems\n  s.yaml: vocabulary: the field 'vocabulary' is required. Add e.g. 'vocabulary: [A, B]'\n  s.yaml: max_length: the field 'max_length' is required. Add e.g. 'max_length: 3'\n  s.yaml: logits: the field 'logits' is required. Add e.g. 'logits: tabular'\n  s.yaml: reward: the field 'reward' is required. Add e.g. 'reward: {A.eos: 1}'"),
    'default prompt is a token': (BASE.replace("prompts: {x: 1/2, y: 1/2}\n", "").replace("[A, B]", "[A, prompt]"),
     "invalid case s.yaml: 1 problem\n  s.yaml: prompts: without 'prompts' the one prompt is named 'prompt', which is also a token. Name the prompt, e.g. 'prompts: q'"),
    'dup prompt': (BASE.replace("{x: 1/2, y: 1/2}", "{x: 1/2, x: 1/2}"),
     "invalid case s.yaml: 1 problem\n  s.yaml:4: prompts.x: duplicate key 'x' (given: 'x'). It is first given on line 4"),
    'sum': (BASE.replace("{x: 1/2, y: 1/2}", "{x: 1/2, y: 1/3}"),
     "invalid case s.yaml: 1 problem\n  s.yaml:4: prompts: probabilities sum to 5/6, not 1 (given: '5/6'). Make the probabilities of this distribution add up to exactly 1"),
    'prob range': (BASE.replace("{x: 1/2, y: 1/2}", "{x: 3/2, y: -1/2}"),
     "invalid case s.yaml: 2 problems\n  s.yaml:4: prompts.x: probability 3/2 outside [0, 1] (given: '3/2'). Probabilities must lie in [0, 1]\n  s.yaml:4: prompts.y: probability -1/2 outside [0, 1] (given: '-1/2'). Probabilities must lie in [0, 1]"),
    'prompt theta': (BASE.replace("{x: 1/2, y: 1/2}", "{x: w, y: 1 - w}"),
     "invalid case s.yaml: 2 problems\n  s.yaml:4: prompts.x: the prompt distribution must not depend on the parameters (it uses w) (given: 'w')\n  s.yaml:4: prompts.y: the prompt distribution must not depend on the parameters (it uses w) (given: '1 - w')"),
    'prompt name': (BASE.replace("{x: 1/2, y: 1/2}", "[x, end, A, 2b]"),
     "invalid case s.yaml: 3 problems\n  s.yaml:4: prompts.end: 'end' names the terminal state of the compiled MDP (given: 'end'). Rename the prompt\n  s.yaml:4: prompts.A: 'A' is both a prompt and a token (given: 'A'). Rename the prompt or the token\n  s.yaml:4: prompts.2b: '2b' is not a valid name (given: '2b'). Use letters, digits and _, starting with a letter"),
    'vocab token': (BASE.replace("[A, B]", "[A, B.C, A]"),
     "invalid case s.yaml: 2 problems\n  s.yaml:5: vocabulary: duplicate name 'A' (given: 'A'). It is first listed on line 5\n  s.yaml:5: vocabulary: 'B.C' is not a token name (given: 'B.C'). A token is letters, digits and _ (prefixes are written A.B, contexts easy:A.B)"),
    'vocab only eos': (BASE.replace("[A, B]", "[eos]"),
     "invalid case s.yaml: 1 problem\n  s.yaml:5: vocabulary: the vocabulary needs at least one token besides the end token 'eos'. Write e.g. 'vocabulary: [A, B]'"),
    'eos rename': (BASE.replace("[A, B]", "[A, B]\neos: stop"),
     "invalid case s.yaml: 1 problem\n  s.yaml:9: reward.A.eos: unknown token 'eos' (given: 'A.eos'). Known tokens: A, B, stop"),
    'eos bad': (BASE.replace("[A, B]", "[A, B]\neos: 'a b'"),
     "invalid case s.yaml: 1 problem\n  s.yaml:6: eos: the end token must be a token name: letters, digits and _ (given: 'a b'). Write e.g. 'eos: stop'"),
    'max_length': (BASE.replace("max_length: 2", "max_length: 0"),
     "invalid case s.yaml: 1 problem\n  s.yaml:6: max_length: max_length must be a positive integer (given: '0'). Write e.g. 'max_length: 3' (the most tokens of a completion, the end token included)"),
    'max_length str': (BASE.replace("max_length: 2", "max_length: two"),
     "invalid case s.yaml: 1 problem\n  s.yaml:6: max_length: max_length must be a positive integer (given: 'two'). Write e.g. 'max_length: 3' (the most tokens of a completion, the end token included)"),
    'limit': (BASE.replace("max_length: 2", "max_length: 20"),
     "invalid case s.yaml: 1 problem\n  s.yaml:6: max_length: 2 prompt(s) x 1,048,575 prefixes each = 2,097,150 prefixes, over the limit of 100,000 (each prefix is a state of the compiled MDP) (given: '20'). Use a shorter max_length, fewer tokens or fewer prompts (docs/limits.md)"),
    'limit pairs': (BASE.replace("[A, B]", "[" + ", ".join(f"t{i}" for i in range(2000)) + "]").replace("max_length: 2", "max_length: 1").replace("{x: 1/2, y: 1/2}", "[" + ", ".join(f"p{i}" for i in range(600)) + "]"),
     'invalid case s.yaml: 1 problem\n  s.yaml:5: vocabulary: 600 prefixes x 2,001 tokens = 1,200,600 token steps, over the limit of 1,000,000. Use fewer tokens or a shorter max_length (docs/limits.md)'),
    'logits token': (BASE.replace("{A: w}", "{C: w}"),
     "invalid case s.yaml: 1 problem\n  s.yaml:7: logits.C: unknown token 'C' (given: 'C'). Known tokens: A, B, eos"),
    'logits bad': (BASE.replace("{A: w}", "fancy"),
     "invalid case s.yaml: 1 problem\n  s.yaml:7: logits: expected 'tabular', a map token -> logit or a map context -> token -> logit (given: 'fancy')"),
    'logits ctx': (BASE.replace("{A: w}", "{default: {A: w}, z: {A: 1}, x:A.B: {A: 1}, x:eos: {A: 1}, x:C: {A: 1}, x:A..B: {A: 1}, B: 3}"),
     "invalid case s.yaml: 6 problems\n  s.yaml:7: logits.z: unknown context 'z': not a prompt, nor a prefix of known tokens (given: 'z'). A context is a prompt (x, y), prompt:A.B, or a prefix A.B for every prompt\n  s.yaml:7: logits.x:A.B: the prefix has 2 tokens; the policy acts only after fewer than max_length = 2 (given: 'x:A.B')\n  s.yaml:7: logits.x:eos: the end token 'eos' ends a completion: nothing follows it, and the policy does not act after it (given: 'x:eos')\n  s.yaml:7: logits.x:C: unknown token 'C' (given: 'x:C'). Known tokens: A, B, eos\n  s.yaml:7: logits.x:A..B: an empty token in 'A..B' (given: 'x:A..B'). Write the tokens separated by single dots, e.g. A.B.eos\n  s.yaml:7: logits.B: in the table form every entry is a context -> token -> logit map (given: 'B'). Put the logits of every context under 'default: {token: logit}'"),
    'logits inf': (BASE.replace("{A: w}", "{A: w + log(length)}"),
     "invalid case s.yaml: 1 problem\n  s.yaml:7: logits.A: the logit of token 'A' in context 'x' is not a finite real number (it is zoo) (given: 'w + log(length)')"),
    'logits pi': (BASE.replace("{A: w}", "{A: w*pi}"),
     "invalid case s.yaml: 1 problem\n  s.yaml:7: logits.A: unknown name 'pi' in the logits (given: 'pi'). Names allowed here: count_A, count_B, first_A, first_B, has_A, has_B, last_A, last_B, length, w, x, y"),
    'reward theta': (BASE.replace("{A.eos: 1}", "{A.eos: w}"),
     "invalid case s.yaml: 1 problem\n  s.yaml:8: reward.A.eos: the reward must not depend on the parameters (it uses w) (given: 'w'). Only the policy's logits depend on theta"),
    'reward keys': (BASE.replace("{A.eos: 1}", "{A: 1, A.eos.B: 1, A.B.A: 2, eos.A: 1, x: 1, z:A.eos: 1, C.eos: 1}"),
     "invalid case s.yaml: 7 problems\n  s.yaml:8: reward.A: 'A' is not a completion: it neither ends with the end token 'eos' nor has max_length = 2 tokens (given: 'A'). Write e.g. 'A.eos'\n  s.yaml:8: reward.A.eos.B: the end token 'eos' ends a completion: nothing follows it (given: 'A.eos.B')\n  s.yaml:8: reward.A.B.A: the completion has 3 tokens, more than max_length = 2 (given: 'A.B.A')\n  s.yaml:8: reward.eos.A: the end token 'eos' ends a completion: nothing follows it (given: 'eos.A')\n  s.yaml:8: reward.x: 'x' is a prompt: a reward entry names a completion (given: 'x'). Write 'x:A.eos' for the completion A.eos of x\n  s.yaml:8: reward.z:A.eos: unknown prompt 'z' (given: 'z:A.eos'). Known prompts: x, y\n  s.yaml:8: reward.C.eos: unknown token 'C' (given: 'C.eos'). Known tokens: A, B, eos"),
    'reward inf': (BASE.replace("{A.eos: 1}", "1/(length - 1)"),
     "invalid case s.yaml: 1 problem\n  s.yaml:8: reward: the reward of the completion 'x:eos' is not a finite real number (it is zoo) (given: '1/(length - 1)')"),
    'reward correct': (BASE.replace("{A.eos: 1}", "correct"),
     "invalid case s.yaml: 1 problem\n  s.yaml:8: reward: unknown name 'correct' in the reward (given: 'correct'). Names allowed here: count_A, count_B, finished, first_A, first_B, has_A, has_B, last_A, last_B, length, w, x, y"),
    'answers': (BASE + "answers: {x: eos, q: A}\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: answers.x: the end token 'eos' cannot be an answer (given: 'eos'). An answer is the last token before 'eos': one of A, B"),
    'answers missing': (BASE + "answers: {x: A}\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: answers: no answer for prompt(s) y. Give every prompt its answer, or one token for all: 'answers: A'"),
    'beta no ref': (BASE + "beta: 1/10\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: beta: a KL coefficient beta needs a reference policy (given: '1/10'). Add 'reference: uniform', or reference logits"),
    'beta neg': (BASE + "beta: -1\nreference: uniform\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: beta: the KL coefficient beta must be a non-negative real number (it is -1) (given: '-1'). Write e.g. 'beta: 1/10'"),
    'beta theta': (BASE + "beta: w\nreference: uniform\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: beta: the KL coefficient beta must not depend on the parameters (given: 'w')"),
    'ref theta': (BASE + "reference: {A: w}\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: reference.A: the reference logits must not depend on the parameters (it uses w) (given: 'w'). Only the policy's logits depend on theta"),
    'ref bad': (BASE + "reference: tabular\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: reference: expected 'uniform', a map token -> logit or a map context -> token -> logit (given: 'tabular')"),
    'stale': (BASE + "stale: {q: 1, w: x}\n",
     "invalid case s.yaml: 2 problems\n  s.yaml:9: stale.q: unknown parameter 'q' (given: 'q'). Known parameters: w\n  s.yaml:9: stale.w: unknown name 'x' in a value of theta_old (numbers and constants) (given: 'x'). Names allowed here: none"),
    'clip': (BASE + "clip: 0\n",
     "invalid case s.yaml: 1 problem\n  s.yaml:9: clip: the clip epsilon must be a positive real number (it is 0) (given: '0'). Write e.g. 'clip: 1/5'"),
    'param clash': (BASE.replace("{w: 0}", "{w: 0, length: 1, x: 2}"),
     "invalid case s.yaml: 2 problems\n  s.yaml:3: parameters.length: 'length' is the name of a feature (a prompt, length, finished, correct, or count_/has_/first_/last_ of a token) (given: 'length'). Rename it\n  s.yaml:3: parameters.x: 'x' is the name of a feature (a prompt, length, finished, correct, or count_/has_/first_/last_ of a token) (given: 'x'). Rename it"),
    'tabular clash': (BASE.replace("{A: w}", "tabular").replace("[A, B]", "[A, A_B, B]").replace("{w: 0}", "{}"),
     "invalid case s.yaml: 2 problems\n  s.yaml:7: logits: tabular parameter name 'theta_x_A_B' stands for both ('x', 'A_B') and ('x:A', 'B') (given: 'tabular'). Rename prompts or tokens so that the names differ (e.g. avoid '_' in names)\n  s.yaml:7: logits: tabular parameter name 'theta_y_A_B' stands for both ('y', 'A_B') and ('y:A', 'B') (given: 'tabular'). Rename prompts or tokens so that the names differ (e.g. avoid '_' in names)"),
    'prompt is a feature': (BASE.replace("{x: 1/2, y: 1/2}", "[x, length, count_A]"),
     "invalid case s.yaml: 2 problems\n  s.yaml:4: prompts.length: 'length' is the name of a feature, or looks like one (length, finished, correct, count_/has_/first_/last_ of a token) (given: 'length'). Rename the prompt\n  s.yaml:4: prompts.count_A: 'count_A' is the name of a feature, or looks like one (length, finished, correct, count_/has_/first_/last_ of a token) (given: 'count_A'). Rename the prompt"),
    'no tokens after the prompt': (BASE.replace("{A.eos: 1}", "{'x:': 1}"),
     "invalid case s.yaml: 1 problem\n  s.yaml:8: reward.x:: no tokens after ':' (given: 'x:'). Write e.g. 'x:A.eos'"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_each_problem_has_its_exact_message(name):
    text, expected = BAD[name]
    assert message(text) == expected


def test_the_limits_are_those_of_docs_limits():
    assert (MAX_PREFIXES, MAX_TOKEN_STEPS) == (10**5, 10**6)
    # 1 prompt, 2 tokens: 1 + 2 + ... + 2**(L-1) = 2**L - 1 prefixes, over 10**5 from L = 17
    text = BASE.replace("{x: 1/2, y: 1/2}", "x")
    assert "131,071 prefixes each = 131,071 prefixes, over the limit of 100,000" in message(
        text.replace("max_length: 2", "max_length: 17"))
    seq = pgverify.sequence_case_from_dict({"name": "t", "prompts": "x", "vocabulary": ["A", "B"],
                                            "max_length": 10, "logits": "tabular", "reward": 0})
    assert len(seq.parameters) == (2**10 - 1) * 3


def test_a_five_line_case():
    """Without 'kind', a 'vocabulary' makes a sequence case; without 'prompts' there is one, named 'prompt'."""
    case = pgverify.case_from_yaml("name: five\nvocabulary: [A, B]\nmax_length: 2\nlogits: tabular\n"
                                   "reward: {A.eos: 1}\n")
    seq = case.sequence
    assert seq.prompts == ("prompt",) and seq.prompt_probs == {"prompt": 1} and case.rho0 == {"prompt": 1}
    assert seq.vocabulary == ("A", "B", "eos") and seq.eos == "eos" and seq.beta == 0
    assert seq.reference is None and seq.old_point is None and seq.clip_epsilon is None
    assert len(seq.parameters) == 3 * 3  # contexts prompt, prompt:A, prompt:B x tokens A, B, eos


def test_an_unused_parameter_is_a_warning():
    case = pgverify.case_from_yaml(BASE.replace("{w: 0}", "{w: 0, spare: 1}"), source="s.yaml")
    assert [p.format("s.yaml") for p in case.warnings] == [
        "s.yaml:3: parameters.spare: parameter 'spare' is declared but used nowhere. Remove it, or use it in "
        "the logits"]
    assert case.sequence.warnings == case.warnings


def test_load_case_returns_the_compiled_mdp_and_load_sequence_case_the_sequence(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    case = pgverify.load_case(path)
    seq = pgverify.load_sequence_case(path)
    assert isinstance(case, pgverify.Case) and isinstance(case.sequence, pgverify.SequenceCase)
    assert isinstance(seq, pgverify.SequenceCase) and seq.source == str(path) and seq.lines["reward"] == 8
    assert case.states == ("x", "x:A", "x:B", "y", "y:A", "y:B", "end")
    # a file that is not a sequence case
    mdp = tmp_path / "m.yaml"
    mdp.write_text("name: m\nstates: [S]\n")
    with pytest.raises(pgverify.CaseFileError) as info:
        pgverify.load_sequence_case(mdp)
    assert "states: unknown field 'states'" in str(info.value)


def test_python_values_and_sympy_symbols():
    w = sympy.Symbol("w")  # matched to the parameter by name
    seq = pgverify.SequenceCase.from_dict({
        "name": "py", "parameters": {"w": 0.5}, "prompts": {"x": sympy.Rational(1, 3), "y": "2/3"},
        "vocabulary": ["A"], "max_length": 1, "logits": {"A": 2 * w}, "reward": {"A": 1.5},
        "reference": "uniform", "beta": 0.1})
    W = seq.parameters[0]
    assert seq.point == {W: sympy.Rational(1, 2)} and seq.logits[("x", ())]["A"] == 2 * W
    assert seq.reward[("y", ("A",))] == sympy.Rational(3, 2) and seq.beta == sympy.Rational(1, 10)
    assert seq.reference[("x", ())] == {"A": sympy.Rational(1, 2), "eos": sympy.Rational(1, 2)}
    with pytest.raises(pgverify.CaseFileError) as info:
        pgverify.SequenceCase.from_dict({"name": "py", "kind": "mdp", "prompts": "x", "vocabulary": ["A"],
                                         "max_length": 1, "logits": "tabular", "reward": 0})
    assert str(info.value) == ("invalid case: 1 problem\n  kind: a sequence case has 'kind: sequence' "
                               "(given: 'mdp'). Write 'kind: sequence'")


def test_at_another_point_checks_the_logits_again():
    case = pgverify.case_from_yaml(BASE.replace("{A: w}", "{A: log(w)}").replace("{w: 0}", "{w: 1}"),
                                   source="s.yaml")
    with pytest.raises(pgverify.CaseFileError) as info:
        case.at({"w": 0})
    assert str(info.value) == (
        "invalid case s.yaml: 1 problem\n  s.yaml:7: logits: the logit of token 'A' in context 'x' is not a finite "
        "real number at the parameter point (it is zoo) (given: 'log(w)'). Move the point to where every logit "
        "is defined")


def test_the_cli_refuses_a_bad_sequence_case_with_status_2(tmp_path):
    from click.testing import CliRunner

    from pgverify.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("{A.eos: 1}", "{A.eos: w}"))
    result = CliRunner().invoke(main, ["check", str(bad)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "bad.yaml:8: reward.A.eos: the reward must not depend on the parameters (it uses w)" in result.stderr
