r"""Run icpi on your own task, from Python and from an Optuna study.

The task is ``examples/putt.py``'s :class:`PuttTask` (a MuJoCo scene the file builds
itself). This script

1. collects an improvement dataset for it (hindsight relabelling, no model);
2. improves a skill on one instance with the numeric baseline ``lknn20`` and with
   ``icpi+`` — by default without the language model (``model=off``), with the embedded
   model when ``--with-model`` is given (or any endpoint: ``OPENAI_BASE_URL``);
3. kills nothing but shows that a run directory resumes: asking for more iterations
   extends the run, keeping every finished rollout;
4. runs the same method as an Optuna sampler next to Optuna's TPE at equal budget, in a
   SQLite study that ``optuna-dashboard sqlite:///OUT/studies.db`` shows.

Usage: ``python examples/own_task.py [--out examples_out] [--size 100] [--iterations 15]
[--with-model]``. The same from the command line::

    icpi collect --task examples/putt.py:PuttTask --out examples_out/putt-data --size 100
    icpi run --task examples/putt.py:PuttTask --dataset examples_out/putt-data \\
        --method icpi+ --method-model off --seed 1 --out examples_out/cli-run
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # to import putt.py beside it

from putt import PuttTask

from icpi import api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("examples_out"))
    parser.add_argument("--size", type=int, default=100, help="Dataset examples.")
    parser.add_argument("--iterations", type=int, default=15, help="Rollouts per run.")
    parser.add_argument("--seed", type=int, default=1, help="The instance to improve on.")
    parser.add_argument("--with-model", action="store_true", help="icpi+ asks the model too.")
    parser.add_argument("--no-optuna", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    task = PuttTask()
    data = args.out / "putt-data"
    ds = api.collect(task, data, size=args.size, seed=0)
    print(f"dataset: {len(ds)} examples in {data}")

    settings = {} if args.with_model else {"model": "off"}
    for method, extra in (("lknn20", {}), ("icpi+", settings)):
        out = args.out / f"run-{method}"
        s = api.improve(task, out, method=method, settings=extra, dataset=data,
                        iterations=args.iterations, seed=args.seed)  # fmt: skip
        print(
            f"{method:7s}: cost {s['initial_cost']:.3f} -> final {s['final_cost']:.4f} m,"
            f" best {s['best_cost']:.4f} m at θ = {[round(v, 3) for v in s['best_theta']]}"
        )
    # A run directory resumes: the same call with a larger budget extends the run.
    longer = api.improve(task, args.out / "run-lknn20", method="lknn20", dataset=data,
                         iterations=args.iterations + 5, seed=args.seed)  # fmt: skip
    print(f"lknn20 extended to {longer['iterations']} rollouts: best {longer['best_cost']:.4f} m")

    if not args.no_optuna:
        optuna_study(task, data, args)


def optuna_study(task: PuttTask, data: Path, args: argparse.Namespace) -> None:
    import optuna

    from icpi.integrations.optuna_sampler import ICPISampler, objective_for

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(args.out / 'studies.db').resolve()}"
    settings = {} if args.with_model else {"model": "off"}
    icpi = ICPISampler(task, method="icpi+", settings=settings, dataset=str(data),
                       seed=args.seed, n_trials=args.iterations)  # fmt: skip
    for name, sampler in (("icpi+", icpi), ("tpe", optuna.samplers.TPESampler(seed=args.seed))):
        study = optuna.create_study(
            study_name=f"putt-{name}-seed{args.seed}", storage=storage, load_if_exists=True
        )
        study.sampler = sampler
        left = args.iterations - len(study.trials)
        if left > 0:
            study.optimize(objective_for(task, icpi.instance), n_trials=left)
        print(f"optuna {name:5s}: best {study.best_value:.4f} m after {len(study.trials)} trials")
    print(f"studies in {storage} (optuna-dashboard {storage})")


if __name__ == "__main__":
    main()
