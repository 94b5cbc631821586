"""Config resolvers for the Optuna search preset; sqlite is read directly, not via optuna.

Kept free of optuna so that composing any config stays fast.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

DATABASE = "optuna.db"


def optuna_direction(mode: str) -> str:
    """trainer.mode (min or max) -> Optuna's direction."""
    return "maximize" if mode == "max" else "minimize"


def optuna_storage(sweep_dir: str) -> str:
    """The study's sqlite URL in the sweep directory, which is made now: the sweeper opens
    the storage before its launcher creates the directory."""
    directory = Path(sweep_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _route_optuna_logs_through_logging()
    return f"sqlite:///{directory / DATABASE}"


def _route_optuna_logs_through_logging() -> None:
    """Optuna prints coloured lines to stderr even under cron; send them through Python
    logging instead, where Hydra's plain console format applies."""
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()


def optuna_trials_left(sweep_dir: str, study_name: str, total: int) -> int:
    """Trials still to run for the study to hold `total` completed or pruned ones.

    A search interrupted after some trials continues with the rest when it is run again
    against the same storage (the same sweep directory).
    """
    path = Path(sweep_dir) / DATABASE
    if not path.is_file():
        return int(total)
    with sqlite3.connect(path) as connection:
        try:
            (done,) = connection.execute(
                "SELECT COUNT(*) FROM trials JOIN studies USING (study_id)"
                " WHERE studies.study_name = ? AND trials.state IN ('COMPLETE', 'PRUNED')",
                (study_name,),
            ).fetchone()
        except sqlite3.DatabaseError:
            return int(total)
    return max(int(total) - done, 0)
