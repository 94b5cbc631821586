"""The defaults the data settles: a smooth set of shapes is warped and mixed, and trains longer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from conftest import run_in_process

from lstm_cli.config.checks import validate_train_config
from lstm_cli.config.validate import composed
from lstm_cli.data.smoothness import SMOOTH_BELOW, roughness
from lstm_cli.data.splits import PreparedData, SequenceSplit
from lstm_cli.runs.resume import continued_config
from lstm_cli.training.auto_defaults import settle


def waves(count: int, steps: int, cycles: float) -> torch.Tensor:
    """[count, steps, 1]: sine waves of `cycles` cycles, each at its own phase."""
    time = torch.linspace(0, 2 * math.pi * cycles, steps).unsqueeze(0)
    phases = torch.rand(count, 1) * 2 * math.pi
    return torch.sin(time + phases).unsqueeze(2)


def split_of(x: torch.Tensor, lengths: torch.Tensor | None = None) -> SequenceSplit:
    lengths = torch.full((len(x),), x.shape[1]) if lengths is None else lengths
    return SequenceSplit(x, lengths, torch.arange(len(x)) % 2)


def test_roughness_tells_slow_shapes_from_spikes_and_noise():
    torch.manual_seed(0)
    slow = roughness(split_of(waves(40, 250, 3)))  # an outline: 250 steps, three bends
    assert slow < SMOOTH_BELOW / 10
    noise = roughness(split_of(torch.randn(40, 250, 2)))
    assert 1.3 < noise < 1.7  # the midpoint's distance: 1 + 1/4 + 1/4 of the variance
    spikes = torch.zeros(40, 250, 1)
    spikes[:, ::25] = 5.0  # an appliance switched on for one step in 25
    assert roughness(split_of(waves(40, 250, 3) + spikes)) > SMOOTH_BELOW
    assert roughness(split_of(waves(40, 24, 1))) < SMOOTH_BELOW  # short, but a slow curve


def test_roughness_reads_real_steps_only_and_needs_a_varying_sequence():
    torch.manual_seed(0)
    x = waves(40, 250, 3)
    lengths = torch.randint(100, 251, (40,))
    x[torch.arange(250).unsqueeze(0) >= lengths.unsqueeze(1)] = 0.0  # padding after each end
    short = roughness(split_of(x, lengths))
    assert short < SMOOTH_BELOW / 10  # the jump from the last step to the padding is not read
    assert roughness(split_of(torch.ones(4, 50, 1))) == math.inf
    assert roughness(split_of(waves(4, 2, 1))) == math.inf  # no step has two neighbours


def classification(x: torch.Tensor) -> PreparedData:
    split = split_of(x)
    return PreparedData("classification", split, split, split, 1, 2, False, {})


def settled(*overrides: str, data: PreparedData) -> tuple[dict[str, float], float | None]:
    config, _ = validate_train_config(composed("train", ["dataset=italy_power", *overrides]))
    config, measured = settle(config, data)
    augment, trainer = config.augment, config.trainer
    keys = {"warp": augment.warp, "mixup": augment.mixup, "min_steps": trainer.min_steps}
    return keys, measured


def test_the_auto_keys_warp_mix_and_lengthen_a_smooth_set_only():
    torch.manual_seed(0)
    smooth, rough = classification(waves(36, 251, 3)), classification(torch.randn(36, 251, 1))
    keys, measured = settled(data=smooth)
    assert keys == {"warp": 0.2, "mixup": 0.2, "min_steps": 3000}
    assert measured is not None and measured < SMOOTH_BELOW
    keys, measured = settled(data=rough)
    assert keys == {"warp": 0.0, "mixup": 0.0, "min_steps": 1000}
    assert measured is not None and measured > SMOOTH_BELOW
    # a key the user gives wins, and the least steps follow the warp actually used
    assert settled("augment.warp=0", data=smooth)[0] == {"warp": 0, "mixup": 0.2, "min_steps": 1000}
    keys = settled("augment.warp=0.1", "trainer.min_steps=500", data=rough)[0]
    assert keys == {"warp": 0.1, "mixup": 0.0, "min_steps": 500}
    assert settled("augment.warp=0.1", "augment.mixup=0", data=rough)[1] is None  # not measured


def test_a_task_other_than_classification_is_neither_measured_nor_augmented():
    x = waves(36, 251, 3)
    split = split_of(x)
    regression = PreparedData("regression", split, split, split, 1, 1, False, {})
    keys, measured = settled(data=regression)
    assert keys == {"warp": 0.0, "mixup": 0.0, "min_steps": 1000} and measured is None


def write_shapes(path: Path) -> None:
    """Long-format csv_sequences: 24 smooth waves of one or two cycles, 60 steps each."""
    torch.manual_seed(0)
    rows = ["id,step,value,label"]
    for sequence in range(24):
        label = sequence % 2
        wave = waves(1, 60, 1 + label)[0, :, 0]
        rows += [f"{sequence},{step},{value:.5f},{label}" for step, value in enumerate(wave)]
    path.write_text("\n".join(rows) + "\n")


def test_a_run_says_what_the_roughness_made_of_the_auto_keys(tmp_path):
    write_shapes(tmp_path / "shapes.csv")
    args = ("dataset=csv_sequences", "dataset.path=shapes.csv", "dataset.id_column=id")
    quick = ("model=tiny", "trainer.max_epochs=1", "trainer.refit=false")
    result = run_in_process("train", *args, *quick, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "smooth (bound 0.01): warp and mixup left to auto on; least steps 3000" in result.stdout
    assert "augmented=speed x exp(0.2 N(0, 1)) in 4 stretches, mixup Beta(0.2, 0.2)" in (
        result.stdout
    )
    results = json.loads((tmp_path / "outputs/train/latest/results.json").read_text())
    settled = results["settled"]
    assert settled["roughness"] < SMOOTH_BELOW
    assert (settled["augment.warp"], settled["augment.mixup"]) == (0.2, 0.2)
    assert settled["trainer.min_steps"] == 3000
    off = ("augment.warp=0", "augment.mixup=0")
    result = run_in_process("train", *args, *quick, *off, cwd=tmp_path)
    assert "augmented" not in result.stdout and "roughness" not in result.stdout


def test_a_run_saved_before_the_auto_keys_resumes_unwarped():
    """A checkpoint from before `augment.warp` and `augment.mixup` existed trained without
    them: resumed today, it goes on without them rather than warping a smooth set."""
    today = composed("train", ["dataset=italy_power"])
    saved = composed("train", ["dataset=italy_power"])
    del saved["augment"]["warp"], saved["augment"]["mixup"]
    saved["trainer"]["min_steps"] = 1000
    continued = continued_config(saved, today, ["resume=latest"])
    assert continued["augment"] == {"scale": 0.0, "crop": 1.0, "warp": 0.0, "mixup": 0.0}
    assert continued["trainer"]["min_steps"] == 1000
    assert continued_config(today, today, [])["augment"]["warp"] is None  # a run of today's
