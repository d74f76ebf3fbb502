"""``--prompts paper``: the ICRL paper's texts, word for word (#21 item 4).

``icpi/language/data/icrl_paper_prompts.md`` is the excerpt of the paper's appendix as the
project's text copy of the paper prints it (Markdown from a PDF conversion: ``$…$`` around
arithmetic, ``**`` for bold, backslash escapes). :func:`printed` undoes only that markup;
each prompt text of :data:`~icpi.language.prompts.PAPER` must then equal its figure. Where
the seed file itself is present (the project's machines), the excerpt must be a verbatim
part of it.
"""

import importlib.resources
import json
import re
from pathlib import Path

import pytest
from lang_support import SOLUTION_3457

from icpi.core import ScriptedSampler
from icpi.language.config import lang_config
from icpi.language.prompts import PACKAGE, PAPER
from icpi.language.runner import run_language

SEED = Path("/work/shared/seeds/002_727ad73b2483d9d4.txt")


def excerpt() -> str:
    files = importlib.resources.files("icpi.language") / "data" / "icrl_paper_prompts.md"
    return files.read_text(encoding="utf-8")


def figures() -> dict[str, str]:
    pattern = r"<!-- figure (\d+): [^>]*-->\n(.*?)\n<!-- end figure \1 -->"
    return {m.group(1): m.group(2) for m in re.finditer(pattern, excerpt(), re.DOTALL)}


def printed(markdown: str) -> str:
    """The text of the paper's figure: the conversion's Markdown undone, nothing else."""
    text = re.sub(r"[ \t]*\$([^$\n]*)\$[ \t]*", lambda m: f" {m.group(1).strip()} ", markdown)
    text = text.replace("\\*", "\0").replace("**", "").replace("\0", "*")  # bold vs literal *
    text = re.sub(r"\\([_\[\]()#])", r"\1", text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    text = "\n".join(line for line in lines if line != "```")  # code fences
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def test_the_excerpt_holds_the_seven_figures():
    assert sorted(figures(), key=int) == ["4", "5", "6", "7", "8", "11", "12"]


@pytest.mark.skipif(not SEED.is_file(), reason="the seed papers are on the project's machines")
def test_the_excerpt_is_verbatim_from_the_seed():
    seed = SEED.read_text(encoding="utf-8")
    for number, text in figures().items():
        assert text in seed, f"figure {number} differs from the seed"


def test_the_instructions_are_figures_4_5_and_6():
    f = figures()
    assert PAPER.explore == printed(f["4"])
    assert PAPER.exploit == printed(f["5"])
    assert PAPER.choose == printed(f["6"])


def test_the_game24_task_is_figure_7_with_its_five_demonstrations():
    assert PAPER.game24_task.format(numbers="1 8 10 11") == printed(figures()["7"])
    assert len(PAPER.game24_demos) == 5


def test_the_writing_task_and_judge_are_figures_8_and_11():
    f = figures()
    fig8 = printed(f["8"])
    sentences = re.search(r"must be: (.*) Make a plan", fig8).group(1)  # type: ignore[union-attr]
    s = re.split(r"(?<=[.])\s+", sentences)
    assert len(s) == 4
    assert "Prompt: " + PAPER.writing_task.format(s1=s[0], s2=s[1], s3=s[2], s4=s[3]) == fig8
    fig11 = printed(f["11"])
    judge = PAPER.writing_judge.format(reference=PAPER.writing_reference, action="{ model_answer }")
    assert judge == fig11


def test_the_step_judge_is_figure_12():
    assert PAPER.step_judge.format(step="{step}", left="unused") == printed(figures()["12"])


def test_the_package_and_paper_sets_differ_and_say_where_each_text_comes_from():
    for name in ("explore", "exploit", "choose", "game24_task", "step_judge", "writing_task"):
        assert getattr(PACKAGE, name) != getattr(PAPER, name)
    assert "Figure 7" in PAPER.sources["game24_task"] and "1000" in PAPER.sources["game24_task"]


def test_a_paper_prompt_run_sends_the_papers_text_and_records_it(tmp_path):
    sampler = ScriptedSampler([SOLUTION_3457])
    cfg = lang_config(prompts="paper", problems=1, rounds=2, step_judge="rule",
                      answer_judge="verifier", start=999)  # fmt: skip
    run_language(cfg, tmp_path / "r", sampler=sampler)
    first, second = (c[0] for c in sampler.calls)
    task = PAPER.game24_task.format(numbers="4 9 10 13")
    assert first == f"{PAPER.explore}\n\n{task}"  # round 0: no attempts yet (Figure 10)
    assert second.startswith("<attempt>") and second.endswith(f"{PAPER.exploit}\n\n{task}")
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["prompts"]["set"] == "paper" and config["run"]["prompts"] == "paper"
    assert "Figure 12" in config["prompts"]["sources"]["step_judge"]
    # Rank 1000 (position 999) is the paper's third demonstration: the run says so.
    assert config["notes"] and "24:4 9 10 13" in config["notes"][0]
