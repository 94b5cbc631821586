"""The defaults that depend on the data, settled once it is loaded and before any draw.

`augment.warp` and `augment.mixup` at null (auto) are WARP and MIXUP for classification of
smooth sequences (`data.smoothness`) and 0 otherwise: on the development panel they lift
ArrowHead, a small set of outlines, from 0.70 to 0.85 on its worst seed, while the sets
they would harm (ACSF1's spikes, ItalyPower's 24 hours, BasicMotions' noisy sensors) are
not smooth. `trainer.min_steps` at null is WARPED_MIN_STEPS when the batches are warped (an
augmented set keeps teaching for longer) and MIN_STEPS otherwise. A resumed run settles
them again from the same data, so to the same values.
"""

from __future__ import annotations

from dataclasses import replace

from lstm_cli.config.schema import TrainConfig
from lstm_cli.data.augment import applies
from lstm_cli.data.smoothness import SMOOTH_BELOW, roughness
from lstm_cli.data.splits import PreparedData

WARP = 0.2  # ArrowHead seeds 0-5 with mixup and 3000 steps: 0.846-0.863; 0.1 alone: 0.73 worst
MIXUP = 0.2  # with the warp: ArrowHead's worst of six seeds 0.846, 0.811 without (2000 steps)
MIN_STEPS = 1000  # ACSF1 worst seed 0.69 at 300 steps, 0.76 at 1000
WARPED_MIN_STEPS = 3000  # warped and mixed ArrowHead, worst of seeds 0-5: 0.794 at 1000, 0.846 here


def settle(config: TrainConfig, data: PreparedData) -> tuple[TrainConfig, float | None]:
    """`config` with its auto (null) keys set for `data`, and the training sequences'
    roughness when it was measured (classification of numbers with a key left to auto)."""
    augment, trainer = config.augment, config.trainer
    measured = None
    left_to_auto = augment.warp is None or augment.mixup is None
    if left_to_auto and data.task == "classification" and not data.token_input:
        measured = roughness(data.train)
    smooth = measured is not None and measured < SMOOTH_BELOW
    augment = replace(
        augment,
        warp=WARP if augment.warp is None and smooth else augment.warp or 0.0,
        mixup=MIXUP if augment.mixup is None and smooth else augment.mixup or 0.0,
    )
    if trainer.min_steps is None:
        warped = augment.warp > 0 and applies(augment, data)
        trainer = replace(trainer, min_steps=WARPED_MIN_STEPS if warped else MIN_STEPS)
    return replace(config, augment=augment, trainer=trainer), measured
