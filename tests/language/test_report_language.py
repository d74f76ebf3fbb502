"""``icpi report`` of a language run (#21 item 6): rounds, prompts, answers, rewards, curves."""

import html
import re
import shutil
from pathlib import Path

from lang_support import EXACT, SOLUTION_3457

from icpi.cli.main import main
from icpi.core import ScriptedSampler
from icpi.language.config import lang_config
from icpi.language.runner import run_language

OLD_RUN = Path(__file__).parent / "data" / "run_format2"


def page(path):
    return html.unescape((path / "report.html").read_text())


def test_report_of_an_icrl_run_shows_every_round(tmp_path, capsys):
    long = SOLUTION_3457 + "\n" + "x" * 9_000  # shown whole on the page
    sampler = ScriptedSampler(["Step1: 1 + 1 = 2 (left: 2)\nAnswer: 1 + 1 = 2", long])
    cfg = lang_config(problems=2, rounds=3, split="all", start=0, **EXACT)
    run_language(cfg, tmp_path / "r", sampler=sampler)
    assert main(["report", str(tmp_path / "r"), "--max-videos", "0"]) == 0
    assert "Report of language run" in capsys.readouterr().out
    text = page(tmp_path / "r")
    assert "icrl-preset on game24 (2 problems)" in text
    assert text.count('<details class="prompt">') == 6  # every round of both problems
    assert long in text and "Answer: 1 + 1 = 2" in text  # whole responses
    assert "Instruction: Read every <attempt>" in text  # the prompts
    assert "data:image/svg+xml" in text  # the running-max curve
    rows = re.findall(r"<tr><td>(\d)</td><td>2</td>", text)
    assert rows == ["0", "1", "2"]  # the per-round table


def test_report_of_an_me_icpo_run_shows_summaries_and_final_samples(tmp_path):
    sampler = ScriptedSampler([SOLUTION_3457])
    cfg = lang_config(method="me-icpo", problems=1, rounds=2, k=2, entropy_k=2, final_k=3, **EXACT)
    run_language(cfg, tmp_path / "m", sampler=sampler)
    assert main(["report", str(tmp_path / "m"), "--max-videos", "0"]) == 0
    text = page(tmp_path / "m")
    assert "Final samples: Mean@3" in text and "summary" in text


def test_report_of_an_old_format_run(tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(OLD_RUN, old)
    assert main(["report", str(old), "--max-videos", "0"]) == 0
    assert "earlier icpi (config.json format 2)" in capsys.readouterr().out
    text = page(old)
    assert "24:4 5 6 10" in text and text.count('<details class="prompt">') == 6
