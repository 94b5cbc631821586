"""What a run leaves to look at and to ship: pictures, TensorBoard events, exported models."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, assert_png, read_json, run_cli, run_in_process

from lstm_cli.common.console import sparkline
from lstm_cli.data.splits import Batch
from lstm_cli.model.averaged import AveragedNetwork
from lstm_cli.model.blocks import reverse_within_lengths
from lstm_cli.model.export import ExportableNetwork, export
from lstm_cli.model.network import LSTMNetwork, ModelSpec
from lstm_cli.runs.inference import load_trained

AIRLINE = Path(__file__).parents[1] / "lstm_cli" / "data" / "embedded" / "airline" / "airline.csv"
PLOTS_HINT = "pip install 'lstm-train[plots]'"


def blocked(tmp_path: Path, package: str) -> str:
    """A directory for PYTHONPATH in which `import package` fails, as if not installed."""
    fake = tmp_path / "blocked" / package
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError('{package} is blocked by a test')\n")
    return str(fake.parent)


def test_train_draws_learning_curves(trained_airline):
    assert_png(trained_airline / "outputs/train/latest/curves.png", min_width=800)


def test_evaluate_draws_the_forecasts_over_the_series(trained_airline):
    result = run_cli("evaluate", "run_dir=outputs/train/latest", cwd=trained_airline)
    assert result.returncode == 0, result.stderr
    assert_png(trained_airline / "outputs/evaluate/latest/forecast.png", min_width=800)


def test_predict_draws_the_forecast_beside_its_csv(trained_airline, tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("".join(AIRLINE.read_text().splitlines(keepends=True)[:100]))
    run = trained_airline / "outputs/train/latest"
    drawn = run_cli("predict", f"run_dir={run}", f"input={history}", "output=a.csv", cwd=tmp_path)
    assert drawn.returncode == 0, drawn.stderr
    assert_png(tmp_path / "a.png")
    plain = run_cli(
        "predict",
        f"run_dir={run}",
        f"input={history}",
        "output=b.csv",
        "predict.plot=false",
        cwd=tmp_path,
    )
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "b.csv").exists() and not (tmp_path / "b.png").exists()


def test_without_matplotlib_runs_work_and_say_once_how_to_get_plots(tmp_path):
    no_plots = {"PYTHONPATH": blocked(tmp_path, "matplotlib")}
    result = run_cli(
        "train", "trainer.max_epochs=2", "model=tiny", "plots=true", cwd=tmp_path, **no_plots
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(PLOTS_HINT) == 1
    run = tmp_path / "outputs/train/latest"
    assert (run / "results.json").exists() and not (run / "curves.png").exists()
    evaluated = run_cli("evaluate", "run_dir=outputs/train/latest", cwd=tmp_path, **no_plots)
    assert evaluated.returncode == 0, evaluated.stderr
    assert not list((tmp_path / "outputs/evaluate/latest").glob("*.png"))


def test_tensorboard_events_hold_epoch_and_step_scalars_and_hparams(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_in_process(
        "train",
        "logger=tensorboard",
        "logger.every_steps=2",
        "trainer.max_epochs=3",
        "model=tiny",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(tmp_path / "outputs/train/latest/tensorboard"))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/mape", "epoch/lr", "epoch/grad_norm"} <= scalars
    assert {"step/loss", "step/grad_norm", "step/lr", "hparams/test/mape"} <= scalars
    assert [e.step for e in events.Scalars("val/loss")] == [1, 2, 3]
    with (tmp_path / "outputs/train/latest/metrics.csv").open() as stream:
        val_losses = [float(row["val/loss"]) for row in csv.DictReader(stream)]
    # metrics.csv holds 6 significant digits: up to 5e-6 relative from the event's float
    assert [e.value for e in events.Scalars("val/loss")] == pytest.approx(val_losses, rel=1e-5)
    assert all(e.step % 2 == 0 for e in events.Scalars("step/loss"))
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")


def test_tensorboard_not_installed_is_a_config_error_before_any_work(tmp_path):
    result = run_cli(
        "train", "logger=tensorboard", cwd=tmp_path, PYTHONPATH=blocked(tmp_path, "tensorboard")
    )
    assert_clean_error(result, 2, "logger=tensorboard", "pip install 'lstm-train[tensorboard]'")
    assert not (tmp_path / "outputs").exists()


def run_exported(fmt: str, path: Path, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    if fmt == "torchscript":
        return torch.jit.load(str(path))(x, lengths)
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    given = {"x": x.numpy(), "lengths": lengths.numpy()}
    (outputs,) = session.run(None, {i.name: given[i.name] for i in session.get_inputs()})
    return torch.from_numpy(outputs)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_round_trips_numerically_on_new_shapes(trained_airline, tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    output = tmp_path / f"airline.{fmt}"
    result = run_cli(
        "export",
        "run_dir=outputs/train/latest",
        f"format={fmt}",
        f"output={output}",
        cwd=trained_airline,
    )
    assert result.returncode == 0, result.stderr
    assert "input x=[batch, time, features]" in result.stdout and "output y=" in result.stdout
    metadata = read_json(output.with_suffix(output.suffix + ".json"))
    assert metadata["task"] == "forecasting" and metadata["max_difference_from_pytorch"] < 1e-5
    assert metadata["preprocessing"]["window"] == 24 and "scaler" in metadata["preprocessing"]
    trained = load_trained(trained_airline / "outputs/train/latest/checkpoints/best.pt", "cpu")
    x = torch.randn(5, 30, 1)  # another batch size and length than export saw
    lengths = torch.full((5,), 30)
    with torch.inference_mode():
        expected = trained.model(x, lengths)
    torch.testing.assert_close(run_exported(fmt, output, x, lengths), expected, atol=1e-5, rtol=0)


def test_export_never_replaces_a_file_unless_asked(trained_airline, tmp_path):
    args = ("export", "run_dir=outputs/train/latest", "format=torchscript")
    output = f"output={tmp_path / 'm.pt'}"
    assert run_cli(*args, output, cwd=trained_airline).returncode == 0
    before = (tmp_path / "m.pt").read_bytes()
    refused = run_in_process(*args, output, cwd=trained_airline)
    assert_clean_error(refused, 2, "m.pt exists", "overwrite")
    assert (tmp_path / "m.pt").read_bytes() == before
    assert run_cli(*args, output, "overwrite=true", cwd=trained_airline).returncode == 0


def padded_batch(lengths: list[int], features: int) -> Batch:
    steps = max(lengths)
    x = torch.randn(len(lengths), steps, features)
    x *= (torch.arange(steps) < torch.tensor(lengths).unsqueeze(1)).unsqueeze(-1)
    return Batch(x, torch.tensor(lengths), torch.zeros(len(lengths), dtype=torch.long))


@pytest.mark.parametrize("averaged", [False, True])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_a_default_classifier_exports_for_any_batch_size(tmp_path, fmt, averaged):
    """The default classifier (convolutions, bidirectional LSTM, mean + max + last pooling),
    alone or two averaged (trainer.refit=average), traced on 2 sequences, runs on 5 and 7
    as PyTorch does (its backward direction's start once kept the traced batch size)."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    spec = ModelSpec(2, 3, False, False, 8, 1, True, 0.0, 4, pooling=["mean", "max", "last"])
    spec = replace(  # lengths shortened at both convolutions, as traced
        spec, conv_channels=6, conv_layers=2, conv_kernel=3, conv_stride=4, conv_strides=[2, 2]
    )
    members = [LSTMNetwork(spec).eval() for _ in range(2 if averaged else 1)]
    network = AveragedNetwork.of(members, classifies=True) if averaged else members[0]
    trace, check = padded_batch([9, 6], 2), padded_batch([9, 4, 1, 7, 2], 2)
    exported = export(network, trace, check, fmt)
    assert exported.max_difference is not None and exported.max_difference < 1e-5
    path = tmp_path / f"model.{fmt}"
    path.write_bytes(exported.body)
    other = padded_batch([3, 12, 5, 12, 8, 1, 2], 2)
    with torch.inference_mode():
        expected = network(other.x, other.lengths)
    got = run_exported(fmt, path, other.x, other.lengths)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("per_step", [False, True])
def test_the_exportable_bidirectional_network_equals_the_packed_one(per_step):
    torch.manual_seed(0)
    spec = ModelSpec(3, 2, False, per_step, 8, 2, True, 0.0, 4)
    network = LSTMNetwork(spec).eval()
    x, lengths = torch.randn(6, 9, 3), torch.tensor([9, 4, 1, 7, 9, 2])
    x *= (torch.arange(9) < lengths.unsqueeze(1)).unsqueeze(-1)
    with torch.inference_mode():
        packed, exportable = network(x, lengths), ExportableNetwork.of(network)(x, lengths)
    if per_step:  # padding steps are free to differ; the real steps must not
        mask = torch.arange(9) < lengths.unsqueeze(1)
        packed, exportable = packed[mask], exportable[mask]
    torch.testing.assert_close(exportable, packed, atol=1e-6, rtol=0)


def test_reverse_within_lengths_leaves_padding_behind():
    values = torch.arange(8.0).view(2, 4, 1)  # sequences [0 1 2 3] and [4 5 | 6 7]
    flipped = reverse_within_lengths(values, torch.tensor([4, 2]))
    assert flipped.squeeze(-1).tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_sparkline_runs_low_to_high_and_leaves_gaps_for_nan():
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"
    assert sparkline([1.0, float("nan"), 2.0]) == "▁ █"
    assert len(sparkline(list(map(float, range(500))))) == 60


def test_a_picture_that_cannot_be_written_is_a_warning_not_a_failure(tmp_path, caplog):
    pytest.importorskip("matplotlib")
    from lstm_cli.reporting import plots

    rows = [{"epoch": 1, "train/loss": 1.0, "val/loss": 1.0, "lr": 0.1}]
    unwritable = tmp_path / "missing-directory" / "curves.png"
    assert plots.learning_curves(rows, "val/loss", 1, unwritable) is None
    assert "learning_curves not drawn" in caplog.text


def test_onnx_export_without_the_onnx_package_is_a_config_error(trained_airline, tmp_path):
    result = run_cli(
        "export",
        "run_dir=outputs/train/latest",
        f"output={tmp_path / 'm.onnx'}",
        cwd=trained_airline,
        PYTHONPATH=blocked(tmp_path, "onnx"),
    )
    assert_clean_error(result, 2, "format=onnx", "pip install 'lstm-train[export]'")
    assert not (tmp_path / "m.onnx").exists()
