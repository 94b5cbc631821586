"""The command line as a user meets it: usage, help, config errors, completion."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
from conftest import SCRIPT, assert_clean_error, cli_env, run_in_process


def test_no_arguments_prints_usage_with_every_subcommand(cli):
    result = cli()
    assert result.returncode == 0
    for command in ("train", "evaluate", "predict"):
        assert f"  {command}" in result.stdout


def test_help_flag_prints_usage(cli):
    result = cli("--help")
    assert result.returncode == 0 and "usage: lstm-train" in result.stdout


def test_unknown_subcommand_lists_the_valid_ones(cli):
    assert_clean_error(cli("trian"), 2, "'trian'", "train, evaluate, predict")


def test_train_help_shows_groups_options_and_examples(cli):
    result = cli("train", "--help")
    assert result.returncode == 0
    for text in (
        "optimizer: adam, adamw, rmsprop, sgd",
        "model: large, medium, small, tiny",
        "max_epochs:",
        "Examples:",
        "lstm-train train -m",
    ):
        assert text in result.stdout


def test_evaluate_and_predict_have_their_own_help(cli):
    assert "lstm-train evaluate run_dir=" in cli("evaluate", "--help").stdout
    assert "predict.overwrite" in cli("predict", "--help").stdout


@pytest.mark.parametrize(
    "args",
    [
        ("train", "--help"),
        ("train", "model=large", "dataset=kjv", "-h"),
        ("evaluate", "--help"),
        ("predict", "--help"),
        ("report", "--help"),
    ],
)
def test_fast_help_is_exactly_hydras_help(cli, tmp_path, args):
    """Our help skips Hydra's slow group listing; it must print the very same text, but for
    the YAML comments it adds beside the keys."""
    command, *rest = args
    probe = (
        "import sys\n"
        "from lstm_cli.cli import apps\n"
        f"sys.argv = ['lstm-train', *{rest!r}]\n"
        f"apps.APPS[{command!r}]()\n"
    )
    hydra_own = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=cli_env(LSTM_TRAIN_RUN_STAMP="help"),
        cwd=tmp_path,
        check=True,
    )
    ours = cli(*args)
    assert ours.returncode == 0, ours.stderr
    assert without_comments(ours.stdout) == without_comments(hydra_own.stdout)
    assert "Examples:" in ours.stdout or "usage" in ours.stdout.lower()


def without_comments(text: str) -> str:
    lines = (line for line in text.splitlines() if not line.lstrip().startswith("# "))
    return "\n".join(re.sub(r"\s+# .*$", "", line) for line in lines)


def test_help_gives_each_key_its_yaml_comment_from_the_chosen_presets(cli):
    """The meaning beside the key, continued lines kept, a preset's own comment winning."""
    lines = cli("train", "--help").stdout.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("  min_steps: null")))
    assert "# no early stop before this many optimizer steps" in lines[at]
    assert lines[at + 1].strip().startswith("# batches are warped"), "continued lines kept"
    assert any(
        line.startswith("  max_epochs: 300") and "# small data: many short epochs" in line
        for line in lines
    ), "airline's comment on the key it sets, not train.yaml's"
    sequences = cli("train", "dataset=csv_sequences", "--help").stdout
    assert re.search(r"  split_seed: 0 +# seed of the random val/test split", sequences)
    predict = cli("predict", "--help").stdout
    assert re.search(r"  temperature: 1.0 +# text: sampling temperature", predict)


def test_help_with_a_bad_override_is_one_error_line(cli):
    assert_clean_error(cli("train", "model=nope", "--help"), 2, "model/nope", "large")


def test_help_does_not_import_torch():
    probe = (
        "import sys\n"
        "from lstm_cli.cli import main as cli\n"
        "try:\n    cli.main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=cli_env(), check=True
    )
    assert result.stderr.strip().endswith("NO-TORCH")


def test_cfg_job_prints_the_composed_config_with_overrides(cli):
    result = cli("train", "optimizer=sgd", "model.hidden_size=7", "--cfg", "job")
    assert result.returncode == 0
    assert "name: sgd" in result.stdout and "hidden_size: 7" in result.stdout


def test_a_dataset_picks_the_loss_that_fits_its_task(cli):
    result = cli("train", "dataset=italy_power", "--cfg", "job")
    assert "name: cross_entropy" in result.stdout


def test_misspelled_key_is_a_one_line_config_error(cli, tmp_path):
    assert_clean_error(cli("train", "trainer.max_epoch=3"), 2, "trainer.max_epoch")
    assert not (tmp_path / "outputs").exists()


def test_an_unknown_dataset_key_lists_the_keys_of_the_chosen_kind(cli):
    result = cli("train", "dataset=kjv", "dataset.window=3")
    assert_clean_error(result, 2, "unknown key dataset.window", "dataset.seq_len")
    assert "dataset.horizon" not in result.stderr  # a forecasting key: not this kind's
    forecast = cli("train", "dataset.windw=3")  # the default dataset: airline, csv_forecast
    assert_clean_error(forecast, 2, "did you mean dataset.window?", "dataset.time_format")


def test_unknown_group_option_lists_the_options(cli):
    assert_clean_error(cli("train", "optimizer=adm"), 2, "optimizer/adm", "adam, adamw")


def test_override_syntax_error_is_one_line(cli):
    assert_clean_error(cli("train", "trainer.max_epochs=["), 2)


def test_out_of_range_values_name_key_value_and_range(cli, tmp_path):
    cases = {
        "trainer.batch_size=0": ("trainer.batch_size=0", ">= 1"),
        "model.dropout=1.0": ("model.dropout=1.0", "< 1.0"),
        "optimizer.lr=0": ("optimizer.lr=0.0", "> 0.0"),
        "model.hidden_size=-4": ("model.hidden_size=-4", ">= 1"),
    }
    for override, needles in cases.items():
        assert_clean_error(cli("train", override), 2, *needles)
    assert not (tmp_path / "outputs").exists(), "a config error must stop before any run dir"


def test_errors_found_from_the_machine_or_the_checkpoint_leave_no_run_folder(
    tmp_path, trained_airline
):
    """Checked before Hydra makes a run directory, so `report` never lists them."""
    run_dir = f"run_dir={trained_airline / 'outputs/train/latest'}"
    cases = [
        (("train", "trainer.precision=16-mixed"), 2, "16-mixed needs a CUDA device"),
        (("evaluate", "run_dir=nowhere"), 2, "run_dir=nowhere: no such directory"),
        (("export", "run_dir=nowhere"), 2, "run_dir=nowhere: no such directory"),
        (("predict", run_dir), 2, "input=FILE is required"),
        (("predict", run_dir, "input=x.csv", "output=f.png"), 2, "not a picture"),
        (("predict", run_dir, "input=x.csv"), 1, "input=x.csv: no such file"),
    ]
    if not torch.cuda.is_available():
        cases.append((("train", "trainer.device=cuda"), 2, "has no CUDA device"))
    for args, code, needle in cases:
        assert_clean_error(run_in_process(*args, cwd=tmp_path), code, needle)
    assert not (tmp_path / "outputs").exists()


def test_wrong_type_names_the_expected_type(cli):
    assert_clean_error(cli("train", "trainer.max_epochs=many"), 2, "trainer.max_epochs", "integer")


def test_loss_that_does_not_fit_the_task_is_refused(cli):
    assert_clean_error(
        cli("train", "dataset=italy_power", "loss=mse"),
        2,
        "loss=mse",
        "classification",
        "cross_entropy",
    )


def test_monitor_must_be_reported_by_the_task(cli):
    assert_clean_error(
        cli("train", "trainer.monitor=val/acc", "trainer.mode=max"),
        2,
        "trainer.monitor=val/acc",
        "val/rmse",
    )
    assert_clean_error(
        cli("train", "dataset=italy_power", "trainer.monitor=val/acc"),
        2,
        "trainer.mode=min",
        "trainer.mode=max",
    )


def test_required_value_left_missing_is_named(cli):
    assert_clean_error(cli("train", "dataset=csv_forecast"), 2, "dataset.path", "required")


def test_completion_installs_and_completes_subcommands_and_overrides(tmp_path):
    def query(line: str) -> str:
        env = cli_env(COMP_LINE=line, COMP_POINT=str(len(line)))
        return subprocess.run(
            [str(SCRIPT), "-sc", "query=bash"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    script = subprocess.run(
        [str(SCRIPT), "-sc", "install=bash"],
        capture_output=True,
        text=True,
        env=cli_env(),
        check=True,
    ).stdout
    assert "complete" in script and "lstm-train" in script
    assert query("lstm-train tr").split() == ["train"]
    assert "optimizer=" in query("lstm-train train optim")
    assert "optimizer=sgd" in query("lstm-train train optimizer=s")
    assert "split=" in query("lstm-train evaluate spl")


@pytest.mark.parametrize("args", [("export", "--help"), ("train", "--cfg", "job"), ("--help",)])
def test_a_reader_that_goes_away_stops_the_output_quietly(args):
    """`lstm-train export --help | head -3`: no `error: Broken pipe`, the Unix exit code."""
    process = subprocess.Popen(
        [str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
    )
    process.stdout.close()  # the reader is gone before the first line is written
    stderr = process.stderr.read().decode()
    assert process.wait() == 141, stderr
    assert stderr == ""


def test_version_is_printed(cli):
    from lstm_cli import __version__

    result = cli("--version")
    assert result.returncode == 0 and result.stdout == f"lstm-train {__version__}\n"


def test_a_sweep_plugin_that_is_not_installed_names_the_extra():
    """Without `lstm-train[sweep]`, Hydra cannot find joblib: the error says what to install
    (here the extra is installed, so Hydra's own message is given as it would come)."""
    from lstm_cli.cli.main import _suggestion

    missing = Exception(
        "In 'hydra/config': Could not find 'hydra/launcher/joblib'; available options in"
        " 'hydra/launcher': basic"
    )
    assert "pip install 'lstm-train[sweep]'" in _suggestion("train", missing)
