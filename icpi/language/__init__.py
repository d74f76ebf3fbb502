"""Language tasks on the shared core: ICRL prompting, its baselines, and ME-ICPO.

- :mod:`icpi.language.tasks`: the tasks, one module each (Game of 24, creative writing,
  math), found by a registry; each with its settings dataclass.
- :mod:`icpi.language.methods`: the methods, one class each (ICRL Preset and Autonomous,
  Best-of-N, Self-Refine, Reflexion, CoT-only, Long-CoT, ME-ICPO), found by a registry;
  each with its settings dataclass.
- :mod:`icpi.language.prompts`: the texts shown to the model, the package's or the ICRL
  paper's.
- :mod:`icpi.language.config`: :class:`LangConfig` and its loader (flags, ``--config``,
  Python), ``config.json`` formats.
- :mod:`icpi.language.runner`: ``icpi lang`` runs into resumable run directories.
- :mod:`icpi.language.game24`: puzzles, the standard ranked split, the reference solver, a
  safe evaluator, the response reader.
- :mod:`icpi.language.mathcheck`: symbolic comparison of math answers (``math-verify``).
- :mod:`icpi.language.metering` and :mod:`icpi.language.budget`: model use per role, and
  how much text a prompt may hold.
"""

from icpi.language.config import LangConfig, lang_config, load_lang_config
from icpi.language.game24 import (
    Puzzle,
    check_answer,
    evaluate_expression,
    generate_puzzles,
    is_solvable,
    solve,
)
from icpi.language.methods import METHODS, get_method, load_methods
from icpi.language.runner import run_language
from icpi.language.tasks import TASKS, Problem, get_task, load_tasks, make_task

__all__ = [
    "METHODS",
    "TASKS",
    "LangConfig",
    "Problem",
    "Puzzle",
    "check_answer",
    "evaluate_expression",
    "generate_puzzles",
    "get_method",
    "get_task",
    "is_solvable",
    "lang_config",
    "load_lang_config",
    "load_methods",
    "load_tasks",
    "make_task",
    "run_language",
    "solve",
]
