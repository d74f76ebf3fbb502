"""Language tasks on the shared core: ICRL prompting, its baselines, and ME-ICPO.

- :mod:`icpi.language.game24`: puzzles, the standard ranked split, puzzle files, reference
  solver, safe evaluator, step checker.
- :mod:`icpi.language.tasks`: Game of 24, creative writing and math tasks with rewards
  (the model's own judge by default, as in the paper).
- :mod:`icpi.language.mathcheck`: symbolic comparison of math answers (``math-verify``).
- :mod:`icpi.language.icrl`: ICRL prompting (Preset, Autonomous, ablations) and the
  Best-of-N, Self-Refine, Reflexion, CoT-only and Long-CoT baselines.
- :mod:`icpi.language.me_icpo`: ME-ICPO (majority-vote self-reward on the task's answer
  keys, summaries, minimum-entropy selection, Mean@k / Maj@k).
- :mod:`icpi.language.common`: samplers by role, the token budget of a prompt.
- :mod:`icpi.language.runner`: ``icpi lang`` runs into resumable run directories.
"""

from icpi.language.game24 import (
    Puzzle,
    check_answer,
    evaluate_expression,
    generate_puzzles,
    is_solvable,
    solve,
)
from icpi.language.icrl import BASELINES, ICRL_ABLATIONS, ICRL_METHODS, build_icrl_loop
from icpi.language.me_icpo import ME_ABLATIONS, MeIcpoSettings, build_me_icpo_loop
from icpi.language.runner import METHODS, TASKS, LangConfig, run_language
from icpi.language.tasks import Game24Task, MathTask, Problem, WritingTask, make_task

__all__ = [
    "BASELINES",
    "ICRL_ABLATIONS",
    "ICRL_METHODS",
    "METHODS",
    "ME_ABLATIONS",
    "TASKS",
    "Game24Task",
    "LangConfig",
    "MathTask",
    "MeIcpoSettings",
    "Problem",
    "Puzzle",
    "WritingTask",
    "build_icrl_loop",
    "build_me_icpo_loop",
    "check_answer",
    "evaluate_expression",
    "generate_puzzles",
    "is_solvable",
    "make_task",
    "run_language",
    "solve",
]
