"""`lstm-train predict`: apply a trained model to new data given in the training format.

Forecasting writes the next values after the input series (in the data's own units, with
time stamps when the data has a time column); classification writes each sequence's class
and class probabilities; regression one value per sequence; text a continuation of the
prompt. A forecast is also drawn after its input as <output>.png (predict.plot). An
existing output file is never replaced unless predict.overwrite=true.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from lstm_cli.common.atomic import atomic_file
from lstm_cli.common.console import Reporter
from lstm_cli.common.errors import ConfigError, DataError
from lstm_cli.common.runtime import resolve_device
from lstm_cli.config.schema import PredictConfig
from lstm_cli.config.validate import build, resolve
from lstm_cli.data import forecast as forecast_data
from lstm_cli.data import labels, npz, sequences, text
from lstm_cli.data.files import resolve_path
from lstm_cli.data.panel import Series, read_panel
from lstm_cli.data.scaling import Scaler
from lstm_cli.reporting import plots
from lstm_cli.runs.inference import TrainedModel, forecast, generate_text, load_trained
from lstm_cli.runs.rundir import checkpoint_path, current_run_dir, mark_latest, refuse_to_replace
from lstm_cli.training.evaluation import predict_outputs

log = logging.getLogger("lstm_cli.predict")
PREVIEW_ROWS = 5  # rows shown on the terminal after predicting
PREVIEW_CHARACTERS = 300  # text shown after generating


def run(cfg: DictConfig) -> str:
    options = build(PredictConfig, resolve(cfg))
    device = resolve_device(options.device, "device")
    path = checkpoint_path(options.run_dir, options.checkpoint, options.which)
    trained = load_trained(path, device)
    run_dir = current_run_dir()
    language_model = trained.task == "language_model"
    default_name = "predictions.txt" if language_model else "predictions.csv"
    output = Path(options.output).expanduser() if options.output else run_dir / default_name
    draws = options.predict.plot and trained.task == "forecasting"
    check_options(options, trained.task)
    picture = output.with_suffix(".png") if draws else None
    refuse_to_replace([output, picture], options.predict.overwrite, "predict.overwrite")
    input_path = resolve_path(options.input, "input") if options.input else None
    Reporter()  # from here, log lines also reach the terminal
    if language_model:
        body = _continue_text(trained, options, input_path)
        _write_text(output, body)
        log.info("text: %d characters written to %s", len(body), output)
        log.info("%s%s", body[:PREVIEW_CHARACTERS], "..." if len(body) > PREVIEW_CHARACTERS else "")
    else:
        rows = (
            _forecast_rows(trained, options, input_path, picture)
            if trained.task == "forecasting"
            else _sequence_rows(trained, options, input_path, device)
        )
        _write_rows(output, rows)
        log.info("predictions: %d rows written to %s", len(rows), output)
        log.info("%s", _preview(rows))
    mark_latest(run_dir)
    return str(output)


def _preview(rows: list[dict[str, Any]]) -> str:
    """The first rows as the CSV has them, and how many more there are."""
    lines = [",".join(rows[0]), *(",".join(map(str, row.values())) for row in rows[:PREVIEW_ROWS])]
    if len(rows) > PREVIEW_ROWS:
        lines.append(f"... ({len(rows) - PREVIEW_ROWS} more)")
    return "\n".join(lines)


def check_options(options: PredictConfig, task: str) -> None:
    """What predict can tell before any work (the config check calls it too): an input
    where the model needs one, and an output that is not a picture."""
    if options.output and Path(options.output).suffix.lower() == ".png":
        raise ConfigError(
            f"output={options.output}: predictions are a CSV (or text) file, not a picture;"
            " name a .csv file (the forecast picture is drawn beside it as <name>.png)"
        )
    if task != "language_model" and not options.input:
        raise ConfigError("input=FILE is required: a file in the format the model was trained on")
    if options.input:
        resolve_path(options.input, "input")


def _forecast_rows(
    trained: TrainedModel, options: PredictConfig, path: Path, picture: Path | None
) -> list[dict]:
    """The next steps after the input series; a panel (id_column) gets them per series,
    each row led by its series' id."""
    state = trained.preprocessing
    steps = options.predict.steps or state["horizon"]
    if steps > state["horizon"] and len(state["columns"]) > len(state["targets"]):
        raise ConfigError(
            f"predict.steps={steps} exceeds the horizon ({state['horizon']}) and the model"
            " has covariates, whose future values are unknown"
        )
    if not state.get("id_column"):
        values, stamps = forecast_data.read_series(path, state, "input")
        if len(values) < state["window"]:
            raise DataError(
                f"{path}: {len(values)} time steps, but the model reads {state['window']}"
            )
        return _series_forecast(trained, Series("", values, stamps), steps, path, picture)
    rows = []
    for series in read_panel(path, state, "input"):
        rows += [
            {state["id_column"]: series.id, **row}
            for row in _series_forecast(trained, series, steps, path, None)
        ]
    return rows


def _series_forecast(
    trained: TrainedModel, series: Series, steps: int, path: Path, picture: Path | None
) -> list[dict]:
    state = trained.preprocessing
    values, stamps = series.values, series.stamps
    encoded = forecast_data.encode(values, state, str(path)).float()
    target_index = [state["columns"].index(t) for t in state["targets"]]
    predicted = forecast(
        trained.model, encoded, state["window"], state["horizon"], target_index, steps
    )
    original = forecast_data.decode_targets(predicted.double(), state)
    times = stamps.future(steps) if stamps else [str(k) for k in range(1, steps + 1)]
    if picture is not None:
        history = values[:, target_index[0]].tolist()
        plots.forecast_over_series(
            history,
            {"forecast": len(history)},
            [(len(history), original[:, 0].tolist())],
            f"{state['targets'][0]}: {steps} steps after {path.name}",
            picture,
            state["targets"][0],
            (state["time_column"], stamps.spelled() + times) if stamps else None,
        )
    time_key = state["time_column"] or "step"
    return [
        {
            time_key: t,
            **{name: round(float(v), 6) for name, v in zip(state["targets"], row, strict=True)},
        }
        for t, row in zip(times, original.tolist(), strict=True)
    ]


def _sequence_rows(
    trained: TrainedModel, options: PredictConfig, path: Path, device: torch.device
) -> list[dict]:
    state = trained.preprocessing
    if state["kind"] == "npz":
        raw = npz.read_npz(path, need_labels=False, features=len(state["features"]))
    else:
        raw = sequences.read_sequence_file(path, state, need_labels=False)
    if raw.labels is not None and state["classes"] is not None:
        labels.encode_labels(raw.labels, state, raw.source, raw.ids)
    everything = torch.arange(len(raw.ids))
    split = sequences.scaled_split(raw, state, torch.zeros(len(raw.ids)), everything)
    outputs = predict_outputs(trained.model, split, options.batch_size, device)
    id_key = state.get("id_column", "index")
    if trained.task == "regression":
        values = Scaler(**state["target_scaler"]).inverse(outputs.double())
        count = values.shape[1]  # k targets (npz y [N, k]): predicted_0 .. predicted_{k-1}
        names = ["predicted"] if count == 1 else [f"predicted_{i}" for i in range(count)]
        return [
            {id_key: i, **{name: round(float(v), 6) for name, v in zip(names, row, strict=True)}}
            for i, row in zip(raw.ids, values, strict=True)
        ]
    probabilities = torch.softmax(outputs, dim=-1)
    classes = state["classes"]
    return [
        {
            id_key: i,
            "predicted": classes[int(p.argmax())],
            **{f"p_{name}": round(float(q), 6) for name, q in zip(classes, p, strict=True)},
        }
        for i, p in zip(raw.ids, probabilities, strict=True)
    ]


def _continue_text(trained: TrainedModel, options: PredictConfig, path: Path | None) -> str:
    prompt = options.predict.prompt or (text.read_text(path) if path else "")
    if not prompt:
        raise ConfigError("give predict.prompt=TEXT or input=FILE to start the text from")
    vocab = trained.preprocessing["vocab"]
    ids = generate_text(
        trained.model,
        text.encode(prompt, vocab),
        options.predict.length,
        options.predict.temperature,
        options.predict.seed,
    )
    continuation = text.decode(ids, vocab)
    print(prompt + continuation)
    return prompt + continuation


def _write_rows(output: Path, rows: list[dict[str, Any]]) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(output, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _write_text(output: Path, body: str) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(output, "w", encoding="utf-8") as stream:
        stream.write(body)
