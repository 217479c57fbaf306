"""Write docs/llm-estimators.md from pgverify's own output (tests/test_llm_page.py checks that the
page is current; tests/test_docs.py runs its commands).  Run from the repository root:

    python docs/make_llm_page.py [--keep-blocks]

Every ```console block is a command run here, in a bash shell in the repository root, with the
environment of tests/test_docs.py; every number in the tables comes from
:func:`pgverify.sequence.analyse` (the data of ``pgverify estimators CASE --json``).  A block that
needs torch is kept from the current page when torch is not installed; with ``--keep-blocks`` every
console block is (the text and tables are rewritten, nothing is run).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "llm-estimators.md"
TORCH_EXAMPLE = "docs/examples/grpo_torch.py"

PRELUDE = """\
pgverify() { "$PGVERIFY_DOC_PYTHON" -m pgverify.cli "$@"; }
python() { "$PGVERIFY_DOC_PYTHON" "$@"; }
"""


def _environment() -> dict:
    env = dict(os.environ)
    for var in ("FORCE_COLOR", "CLICOLOR_FORCE", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "PY_COLORS",
                "LINES", "PYTHONSTARTUP", "PYTHONWARNINGS"):
        env.pop(var, None)
    env.update(COLUMNS="100", NO_COLOR="1", TERM="dumb", LC_ALL="C", LANGUAGE="C", PYTHONIOENCODING="utf-8",
               PYTHONUTF8="1", PYTHONUNBUFFERED="1", PGVERIFY_DOC_PYTHON=sys.executable,
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


#: False: take each console block from the current page instead of running it (tests/test_llm_page.py;
#: tests/test_docs.py runs the blocks and checks their output)
RUN_COMMANDS = True


def _current_block(commands, requires) -> str | None:
    """The console block of the current page that starts with the same command, or None."""
    if not PAGE.exists():
        return None
    tag = re.escape(f"<!-- requires: {requires} -->\n") if requires else ""
    m = re.search(r"(?:^|\n)(" + tag + r"```console\n\$ " + re.escape(commands[0]) + r"\n.*?^```\n)",
                  PAGE.read_text(encoding="utf-8"), re.S | re.M)
    return None if m is None else m.group(1)


def console(*commands: str, requires: str | None = None) -> str:
    """A ```console block: each command and what it prints (stdout and stderr), run here."""
    import importlib.util

    if not RUN_COMMANDS or (requires and importlib.util.find_spec(requires) is None):
        kept = _current_block(commands, requires)
        if kept is None:
            raise RuntimeError(f"no block for $ {commands[0]} on the current page: run python docs/make_llm_page.py")
        return kept
    out = []
    for cmd in commands:
        proc = subprocess.run(["bash", "--norc", "--noprofile", "-c", PRELUDE + cmd + " 2>&1"], cwd=ROOT,
                              env=_environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=300)
        text = proc.stdout.decode("utf-8", "replace")
        if "Traceback (most recent call last)" in text:
            raise RuntimeError(f"$ {cmd} crashed:\n{text}")
        out.append(f"$ {cmd}\n" + "\n".join(line.rstrip() for line in text.rstrip().split("\n")))
        if proc.returncode != 0:
            out.append(f"$ echo $?\n{proc.returncode}")
    tag = f"<!-- requires: {requires} -->\n" if requires else ""
    return tag + "```console\n" + "\n".join(out) + "\n```\n"


def _file(path: str, lang: str) -> str:
    return f"<!-- file: {path} -->\n```{lang}\n" + (ROOT / path).read_text(encoding="utf-8") + "```\n"


def _excerpt(path: str) -> str:
    """The case file without its leading comment (the source is cited in the text)."""
    lines = (ROOT / path).read_text(encoding="utf-8").split("\n")
    body = [line for line in lines if not line.startswith("#")]
    return f"<!-- excerpt: {path} -->\n```yaml\n" + "\n".join(body).rstrip() + "\n```\n"


def num(text: str) -> str:
    """An exact rational as pgverify prints it; an arb ball as its midpoint to 10 significant digits
    (each ball of the page has a radius below 1e-15, checked)."""
    m = re.fullmatch(r"\[([-+0-9.e]+) \+/- ([0-9.e+-]+)\]", text)
    if m is None:
        m0 = re.fullmatch(r"\[\+/- ([0-9.e+-]+)\]", text)
        if m0 is not None:  # a ball around 0
            assert float(m0.group(1)) < 1e-15, text
            return f"0 (±{float(m0.group(1)):.0e})"
        return text
    assert float(m.group(2)) < 1e-15, text
    return f"{float(m.group(1)):.10g}…"


def _analyse(path: str, names=None, group: int = 8, **change):
    sys.path.insert(0, str(ROOT))
    import pgverify
    from pgverify.sequence import analyse

    seq = pgverify.load_sequence_case(ROOT / path)
    return analyse(seq, names, group=group, variance=False, jacobian=False).to_dict()


def means_table(d: dict, kl: bool = False) -> str:
    """A markdown table of the exact expected updates (and the KL parts) of a JSON report."""
    params = d["parameters"]
    head = ["estimator"] + [f"E[update]_{p}" for p in params] + ["cosine with grad J"]
    if kl:
        head += ["KL part of E[update]", "-beta grad KL (target)", "missing part"]
    rows = ["| " + " | ".join(["grad J (the target)"] + [num(g) for g in d["objective"]["gradient"]] + ["1"]
                              + (["", "", ""] if kl else [])) + " |"]
    for name, e in d["estimators"].items():
        row = [f"`{name}`"] + [num(m) for m in e["mean"]] + [num(e["cosine"]) if e["cosine"] else "-"]
        if kl:
            k = e.get("kl_part")
            row += ([", ".join(num(v) for v in k["expected"]), ", ".join(num(v) for v in k["target"]),
                     ", ".join(num(v) for v in k["missing"])] if k else ["-", "-", "-"])
        rows.append("| " + " | ".join(row) + " |")
    return ("| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "\n".join(rows) + "\n")


INTRO = r"""# Which LLM policy-gradient estimators are unbiased?

*This page is generated by `python docs/make_llm_page.py` from pgverify's own output; a test fails
when it is out of date, and `tests/test_docs.py` runs every command on it.*

The estimators of language-model RL (REINFORCE, RLOO, GRPO, Dr. GRPO, their ways of averaging over
tokens, the KL penalties) are usually compared by training runs. On a *sequence case* (a prompt
distribution, a small vocabulary, a maximum length, a policy given by its logits, a reward on the
completion, optionally a reference policy and $\beta$; see [case-format.md](case-format.md#sequence-cases))
everything is a finite sum, and `pgverify estimators CASE` gives, for each estimator:

- its **exact expected update** $\mathbb{E}[g]$ over a batch (one prompt $x \sim \rho$ and a group of
  $G$ completions, $G = 8$ by default): closed forms where the advantage is linear in the rewards,
  otherwise an enumeration of the multisets of the group's completion types;
- its **bias** $\mathbb{E}[g] - \nabla J$ against the gradient of the objective
  $J(\theta) = \mathbb{E}_x \mathbb{E}_{o \sim p_\theta(\cdot\mid x)}[R(x,o)] - \beta\,\mathbb{E}_x\mathrm{KL}(p_\theta(\cdot\mid x)\,\|\,p_\mathrm{ref}(\cdot\mid x))$,
  as its norm relative to $\|\nabla J\|$ and as the cosine of the angle between $\mathbb{E}[g]$ and $\nabla J$;
- the trace of its **exact variance**;
- whether $\mathbb{E}[g]$ is **the gradient of some function** ("gradient?"): `yes` when pgverify proves
  it and can name the function; `no` when the Jacobian of $\mathbb{E}[g]$ is asymmetric (a gradient
  field has a symmetric Jacobian; Nota & Thomas 2020); `undecided` otherwise;
- optionally, a Monte Carlo check of each estimator against its own exact mean.

Numbers are **exact** rationals where the policy is rational at the point, and otherwise
**certified**: arb balls, intervals proved to contain the exact value (the `proof` column). In the
tables below a value with `…` is the midpoint of such a ball, rounded to 10 significant digits;
every ball on this page has a radius below $10^{-15}$.

An estimator is named `advantage[+aggregation][+kl_term][+clip]`:

| part | names, and what each does to one group $o_1, \dots, o_G$ |
|---|---|
| advantage $A_i$ | `reinforce` ($R_i$), `reinforce_baseline` ($R_i - V(x)$), `rloo` ($R_i$ minus the mean of the other $G-1$; Kool et al. 2019), `grpo` ($(R_i - \bar R)/(\mathrm{std} + \epsilon)$, population std; Shao et al. 2024), `grpo_sample_std` (std with $G-1$), `dr_grpo` ($R_i - \bar R$; Liu et al. 2025) |
| aggregation | `sum` (default): $\frac1G\sum_i A_i \nabla\log p(o_i)$; `seq_mean`: $\frac1G\sum_i \frac{A_i}{\lvert o_i\rvert}\nabla\log p(o_i)$ (GRPO's $1/\lvert o\rvert$); `token_mean`: $\frac{1}{\sum_j\lvert o_j\rvert}\sum_i A_i\nabla\log p(o_i)$ (DAPO, Yu et al. 2025); `max_len`: $\frac{1}{G L_\max}\sum_i A_i\nabla\log p(o_i)$ (Dr. GRPO) |
| KL term | `k1_reward`, `k2_reward`, `k3_reward`: $R_i - \beta\sum_t k(t)$ before the advantage; `k1_loss`, `k2_loss`, `k3_loss`: $-\beta\sum_t \nabla k(t)$ added per token, the penalty differentiated as a loss; `kl_score`: $-\beta\,\nabla\log p(o)\,\log\frac{p(o)}{p_\mathrm{ref}(o)}$ (Schulman 2020: with $l_t = \log\frac{\pi(o_t)}{\pi_\mathrm{ref}(o_t)}$, $k_1 = l$, $k_2 = l^2/2$, $k_3 = e^{-l} - 1 + l$) |
| `clip` | samples from $\theta_\mathrm{old}$ and the clipped surrogate of PPO/GRPO (Schulman et al. 2017) |

Without `--estimators`, the report lists the usual ones for the case. Its exit status is 0 when every
estimator was analysed (and agrees with its Monte Carlo check): a biased estimator is a finding,
not an error.
"""


def page_text() -> str:
    parts = [INTRO]

    # 1. length ---------------------------------------------------------------------------------
    d = _analyse("cases/seq_length_bias.yaml")
    e = d["estimators"]
    parts.append(r"""
## 1. A length bias: GRPO's $1/\lvert o\rvert$

Liu et al. (2025, Dr. GRPO, section 3.1) point out that GRPO divides each completion's
log-probability gradient by its length $\lvert o\rvert$ before averaging over the group: a wrong answer's
negative advantage is then spread over more tokens the longer the answer is, so a long wrong answer
is pushed down less than a short one. `cases/seq_length_bias.yaml` is the smallest case where this
matters: one prompt, tokens `A`, `B` and the end token `eos`, at most 3 tokens; the only right
answer is the short `A eos` (reward 1), every other completion is wrong (reward 0). The parameter `x`
is the logit of `A` and `stop` the logit of `eos`; at `x = stop = 0` the policy is uniform.

""" + _excerpt("cases/seq_length_bias.yaml") + "\n" + console("pgverify estimators cases/seq_length_bias.yaml") + f"""
The exact expected updates (`pgverify estimators cases/seq_length_bias.yaml --json`, field `mean`):

""" + means_table(d) + f"""
What the tool finds:

- `reinforce`, `reinforce_baseline` and `rloo` are unbiased: their expected update is exactly
  $\\nabla J$ = ({num(d['objective']['gradient'][0])}, {num(d['objective']['gradient'][1])}).
- `dr_grpo` (mean-centred, no std, a sum over tokens) is $\\nabla J$ times a constant,
  {e['dr_grpo']['objective']} in the tool's words, and `dr_grpo+max_len` (Dr. GRPO's constant divisor)
  {e['dr_grpo+max_len']['objective']}: the direction is exact, only the step size changes
  (the $(G-1)/G$ comes from centring on the group's own mean).
- `grpo+seq_mean`, GRPO as published, has expected update ({num(e['grpo+seq_mean']['mean'][0])},
  {num(e['grpo+seq_mean']['mean'][1])}): the `stop` coordinate, the push towards ending the answer,
  is about {float(e['grpo+seq_mean']['mean_float'][1]) / float(d['objective']['gradient_float'][1]):.2f} times the true
  {num(d['objective']['gradient'][1])}, because the long wrong answers, which the gradient wants to cut
  short, are penalised per token. The cosine with $\\nabla J$ is {num(e['grpo+seq_mean']['cosine'])}, and
  the Jacobian of the expected update is asymmetric: it is not the gradient of any function of $\\theta$
  (see the `gradient? no` line above). The sample-std variant behaves the same.
- `grpo+token_mean` (one mean over all tokens of the group, DAPO) keeps the direction far better
  (cosine {num(e['grpo+token_mean']['cosine'])}), but is not a gradient either.
- `grpo` with the std normalisation but a plain sum over tokens is a gradient (of a transformed
  success rate, see the next case); its length of step differs from $\\nabla J$'s, not its direction
  here, because this case has one prompt.
""")

    # 2. difficulty -------------------------------------------------------------------------------
    d = _analyse("cases/seq_difficulty_bias.yaml")
    block = console("python docs/examples/seq_per_prompt.py")
    w_easy, w_hard = (float(w) for w in re.findall(r"grpo / rloo\): \[([0-9.]+) ", block))

    e = d["estimators"]
    parts.append(r"""
## 2. A difficulty bias: GRPO's std normalisation reweights prompts

Dividing a group's advantages by their standard deviation gives each prompt a weight that depends on
its success rate $q_x$: with rewards 0 and 1 the std is about $\sqrt{q_x(1-q_x)}$, small for prompts
that are almost always or almost never solved (Liu et al. 2025, section 3.1). In
`cases/seq_difficulty_bias.yaml` two equally likely prompts share one parameter `w`; at `w = 0` the
easy prompt is answered right with probability 2/3 and the hard one with 1/9.

""" + _excerpt("cases/seq_difficulty_bias.yaml") + "\n"
                 + console("pgverify estimators cases/seq_difficulty_bias.yaml --no-mc") + "\n"
                 + means_table(d) + r"""
With one parameter every estimator points the right way (the cosine is 1); the question is how much
each prompt counts. `docs/examples/seq_per_prompt.py` runs the same analysis on each prompt alone (the
case with all the weight on one prompt); rloo's update is then the exact gradient of that prompt's
success rate, and GRPO's is a multiple of it:

""" + _file("docs/examples/seq_per_prompt.py", "python") + "\n"
                 + block + f"""
So on this case, per unit of $\\nabla q_x$, GRPO (population std, $G = 8$) weights the hard prompt
(success rate 1/9) more than the easy one (2/3): the two `weight` lines, whose quotient is about
{w_hard / w_easy:.2f}. That is the direction of the difficulty bias, and its size here: both weights are
near 2 (about $1/\\mathrm{{std}}$), so most of GRPO's relative bias of
{e['grpo']['relative_bias_float']:.2f} in the table above is a common step size, which moves $w$ the same
way; the reweighting between the prompts is the factor {w_hard / w_easy:.2f}. The expected update over
both prompts is {num(e['grpo']['mean'][0])} against the true {num(d['objective']['gradient'][0])}. For `grpo`
the tool proves that the expected update is a gradient and names the objective only in general
terms: *{e['grpo']['objective']}* (each prompt's rewards take two values, so the update of a prompt
is $\\varphi_x(q_x)\\nabla q_x$). For `grpo+seq_mean` and `grpo+token_mean` it finds the one-parameter
Jacobian symmetric, which proves nothing (every $1\\times1$ matrix is symmetric): `undecided`.
""")

    # 3. KL ---------------------------------------------------------------------------------------
    one = _analyse("docs/examples/seq_one_token.yaml",
                   ["reinforce+k1_loss", "reinforce+k2_loss", "reinforce+k3_loss", "reinforce+kl_score"], group=1)
    parts.append(r"""
## 3. KL penalties differentiated as a loss

Schulman (2020) gives three estimators of $\mathrm{KL}(\pi\,\|\,\pi_\mathrm{ref})$ from samples of
$\pi$: $k_1 = \log\frac{\pi}{\pi_\mathrm{ref}}$, $k_2 = \frac12\log^2\frac{\pi}{\pi_\mathrm{ref}}$,
$k_3 = \frac{\pi_\mathrm{ref}}{\pi} - 1 - \log\frac{\pi_\mathrm{ref}}{\pi}$. GRPO adds $\beta k_3$ to
its loss and differentiates it. Tang & Munos (2025) show that differentiating them as losses gives:
$k_1$, expected gradient 0; $k_2$, the gradient of $\mathrm{KL}(\pi\,\|\,\pi_\mathrm{ref})$; $k_3$,
the gradient of the *forward* $\mathrm{KL}(\pi_\mathrm{ref}\,\|\,\pi)$, not of the KL in the objective;
and on sequences, token-level losses give only a part of the sequence KL's gradient.

### One token: the single-step facts

One parameter `u`, the logit of `A`; at `u = 0` the policy writes `A` or `eos` with probability 1/2
each; the reference writes `A` with probability 4/5. No reward and $\beta = 1$, so $J = -\mathrm{KL}$.

""" + _file("docs/examples/seq_one_token.yaml", "yaml") + "\n"
                 + console("pgverify estimators docs/examples/seq_one_token.yaml -G 1 --no-mc "
                           "--estimators reinforce+k1_loss,reinforce+k2_loss,reinforce+k3_loss,reinforce+kl_score")
                 + "\n" + means_table(one, kl=True) + f"""
- $k_1$ as a loss: expected KL part exactly {num(one['estimators']['reinforce+k1_loss']['kl_part']['expected'][0])}
  ($\\mathbb{{E}}[\\nabla\\log\\pi] = 0$); the whole target is missing.
- $k_2$ as a loss: {num(one['estimators']['reinforce+k2_loss']['kl_part']['expected'][0])}, equal to
  $-\\nabla\\mathrm{{KL}}(\\pi\\,\\|\\,\\pi_\\mathrm{{ref}}) = \\log(2)/2$ (the missing part is a ball around 0).
- $k_3$ as a loss: exactly {num(one['estimators']['reinforce+k3_loss']['kl_part']['expected'][0])}, which
  is $-\\partial_u \\mathrm{{KL}}(\\pi_\\mathrm{{ref}}\\,\\|\\,\\pi) = \\pi_\\mathrm{{ref}}(A) - \\pi(A) = 4/5 - 1/2$
  (for a softmax logit $u$ of `A`, $\\partial_u\\mathrm{{KL}}(\\pi_\\mathrm{{ref}}\\|\\pi) = \\pi(A) - \\pi_\\mathrm{{ref}}(A)$),
  not the target $\\log(2)/2 \\approx$ {num(one['objective']['gradient'][0])}.
- `kl_score`, the score-function form $\\nabla\\log p\\,\\log(p/p_\\mathrm{{ref}})$, is unbiased.
""")

    d = _analyse("cases/seq_kl_wrong_way.yaml")
    e = d["estimators"]
    parts.append(r"""
### On sequences: k3 as a loss moves theta the wrong way

Found by a systematic search with the tool over small cases (one prompt, tokens `A`, `B`, `eos`,
maximum length 2 or 3, logits with one or two shared parameters, a few references, $\beta$ and points),
`cases/seq_kl_wrong_way.yaml` has one parameter, the logit `stop` of the end token. At
`stop = -log(2)` the policy writes `A`, `B`, `eos` with probabilities 2/5, 2/5, 1/5 in every context;
the reference prefers `A` (2/3, 1/6, 1/6); $\beta = 1$; the right answer `A eos` earns 1.

""" + _excerpt("cases/seq_kl_wrong_way.yaml") + "\n" + console("pgverify estimators cases/seq_kl_wrong_way.yaml --no-mc") + "\n"
                 + means_table(d, kl=True) + f"""
- The gradient of $J$ is {num(d['objective']['gradient'][0])} > 0; of it, the KL's share
  $-\\beta\\nabla\\mathrm{{KL}}$ = {num(e['rloo+kl_score']['kl_part']['target'][0])} > 0: every token
  written adds to the sequence's KL, so the KL asks to stop earlier.
- `rloo+k3_loss` has expected update exactly {num(e['rloo+k3_loss']['mean'][0])}: **the opposite sign**
  (cosine {num(e['rloo+k3_loss']['cosine'])}). Its KL part, {num(e['rloo+k3_loss']['kl_part']['expected'][0])},
  points against the KL's gradient and outweighs the reward's {num(e['rloo']['mean'][0])}. Token by token,
  $k_3$ as a loss pulls each context's $\\pi(\\texttt{{eos}}) = 1/5$ towards the reference's 1/6 (the
  forward KL of that token), once per token written: $1/5 - 1/6 = 1/30$ per token times the
  expected length $1/5 \\cdot 1 + 4/5\\,(1/5 \\cdot 2 + 4/5 \\cdot 3) = 2.44$ is the $61/750$ of the table
  (a hand check). It never sees that stopping removes the KL of
  the tokens that would have followed. GRPO's own combination `grpo+seq_mean+k3_loss` also moves
  `stop` the wrong way ({num(e['grpo+seq_mean+k3_loss']['mean'][0])}).
- `rloo+k2_loss`: the token-level reverse KL is stationary in `stop` at this point, so its KL part is
  {num(e['rloo+k2_loss']['kl_part']['expected'][0])} and the *missing part* is the whole of the KL's
  gradient: what Tang & Munos (2025) call the partial gradient, here shown in full. `rloo+k1_loss`
  misses it too (its KL part is exactly 0).
- `rloo+k1_reward` (the KL in the reward, as PPO-RLHF does; Ouyang et al. 2022) and `rloo+kl_score` are
  unbiased: bias a ball around 0 of radius below $10^{{-45}}$ (balls cannot prove an equality, hence
  "undecided" for the verdict). `rloo+k3_reward` is biased.
""")

    d = _analyse("cases/seq_kl_reference.yaml", ["rloo", "rloo+k1_loss", "rloo+k2_loss", "rloo+k3_loss",
                                                  "rloo+kl_score", "grpo+seq_mean+k3_loss"])
    e = d["estimators"]
    parts.append(r"""
### Where k3's bias is small

On `cases/seq_kl_reference.yaml` (two prompts, two parameters, $\beta = 1/10$, a reference with `A`
twice as likely; see [case-format.md](case-format.md#the-compiled-mdp)) the same estimators are far
less wrong:

""" + console("pgverify estimators cases/seq_kl_reference.yaml --no-mc --no-jacobian "
              "--estimators rloo,rloo+k1_loss,rloo+k2_loss,rloo+k3_loss,rloo+kl_score,grpo+seq_mean+k3_loss")
                 + "\n" + means_table(d, kl=True) + f"""
Here `rloo+k3_loss` has cosine {num(e['rloo+k3_loss']['cosine'])} with $\\nabla J$: with a small $\\beta$
the reward's gradient dominates and the KL part's error changes little. Whether k3-in-the-loss
matters depends on $\\beta$, on how far $\\pi$ is from $\\pi_\\mathrm{{ref}}$ and on how the parameters
move the length: the tool answers it case by case.
""")

    # 4. torch ------------------------------------------------------------------------------------
    torch_block = console(f"python {TORCH_EXAMPLE}", requires="torch")
    parts.append(r"""
## 4. Testing your own GRPO loss in PyTorch

`pgverify.testing.assert_unbiased(update, CASE, episodes=N, group=G)` on a sequence case samples
`N` groups of `G` completions and hands them to your function as a `GroupBatch` (arrays: `prompts`,
`tokens`, `mask`, `lengths`, `rewards`, `ref_logprobs`, `theta`; see [testing.md](testing.md#sequence-cases-groups-of-completions)).
Your function returns one update per group (minus the gradient of that group's loss); the group
structure comes from the batch, so group-normalised advantages are computed as your trainer does.
The test compares the mean update with the exact $\nabla J$, or with `expected="NAME"` with the exact
expected update of pgverify's estimator `NAME`, and when it fails it says which of pgverify's
estimators your code matches.

""" + _file(TORCH_EXAMPLE, "python") + "\n" + torch_block + """
The first test fails, and the message recognises the loss as `grpo+seq_mean` with its exact bias
against $\\nabla J$ (the length bias of section 1). The second pins the loss to what GRPO is meant to
compute: if a refactoring of your trainer changes the estimator, this test fails. Without torch, the
block above is skipped by the docs test.
""")

    parts.append(r"""
## References

Kool, W., van Hoof, H., & Welling, M. (2019). Buy 4 REINFORCE samples, get a baseline for free!
*ICLR 2019 workshop (DeepRLStructPred)*.
Liu, Z., Chen, C., Li, W., Qi, P., Pang, T., Du, C., Lee, W. S., & Lin, M. (2025). Understanding
R1-Zero-like training: a critical perspective. arXiv:2503.20783.
Nota, C., & Thomas, P. S. (2020). Is the policy gradient a gradient? *AAMAS 2020*.
Ouyang, L., et al. (2022). Training language models to follow instructions with human feedback.
*NeurIPS 2022*.
Schulman, J. (2020). Approximating KL divergence. Blog post, joschu.net/blog/kl-approx.html.
Schulman, J., Wolski, F., Dhariwal, P., Radford, A., & Klimov, O. (2017). Proximal policy optimization
algorithms. arXiv:1707.06347.
Shao, Z., et al. (2024). DeepSeekMath: pushing the limits of mathematical reasoning in open language
models. arXiv:2402.03300 (GRPO).
Tang, Y., & Munos, R. (2025). On a few pitfalls in KL divergence gradient estimation for RL.
arXiv:2506.09477.
Williams, R. J. (1992). Simple statistical gradient-following algorithms for connectionist
reinforcement learning. *Machine Learning* 8.
Yu, Q., et al. (2025). DAPO: an open-source LLM reinforcement learning system at scale.
arXiv:2503.14476.
""")
    return "".join(parts)


if __name__ == "__main__":
    # --keep-blocks: rewrite the text and tables, keep the console blocks of the current page as they are
    RUN_COMMANDS = "--keep-blocks" not in sys.argv[1:]
    text = page_text()
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(ROOT)}")
