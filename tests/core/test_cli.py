"""The `continuo` command: each sub-command, JSON output, and one-line errors for user mistakes."""

import json
import subprocess
import sys

import pytest
from testdata import VERSE

from core.cli import _dataclass_values, build_parser, main
from core.training import TrainConfig


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_corpora_lists_the_bundled_corpora(capsys):
    code, out, _ = run(capsys, "corpora", "--json")
    names = {c["name"] for c in json.loads(out)}
    assert code == 0 and {"verse", "chat"} <= names


def test_train_then_models_then_generate_then_eval(capsys, continuo_home):
    code, out, err = run(
        capsys,
        "train",
        str(VERSE),
        "--name",
        "mine",
        "--window",
        "8",
        "--embedding-dim",
        "16",
        "--units",
        "16",
        "--epochs",
        "1",
        "--quiet",
    )
    assert code == 0, err
    assert "validation perplexity" in out and (continuo_home / "models" / "mine" / "model.keras").exists()
    code, out, _ = run(capsys, "models", "--json")
    mine = next(m for m in json.loads(out) if m["name"] == "mine")
    assert mine["card"]["corpus"] == "corpus.txt" and mine["card"]["val_perplexity"] > 1
    code, out, _ = run(
        capsys,
        "generate",
        "The sea",
        "-m",
        "mine",
        "--do-sample",
        "--seed",
        "4",
        "--num-return-sequences",
        "2",
        "--max-new-tokens",
        "5",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and len(data["continuations"]) == 2 and data["options"]["seed"] == 4
    code, out, _ = run(capsys, "eval", str(VERSE), "-m", "mine", "--json")
    assert code == 0 and json.loads(out)["perplexity"] > 1


def test_generate_samples_by_default_repeatably_with_a_seed_and_searches_when_beams_are_asked(capsys, tiny_model_path):
    def continuations(*options):
        code, out, err = run(capsys, "generate", "The sea", "-m", str(tiny_model_path), "--json", *options)
        assert code == 0, err
        return json.loads(out)["continuations"]

    many = ["--num-return-sequences", "4", "--max-new-tokens", "12"]
    assert len(set(continuations(*many))) > 1  # sampled without --do-sample: not all alike
    assert continuations(*many, "--seed", "5") == continuations(*many, "--seed", "5")
    assert len(continuations("--num-beams", "4", "--num-return-sequences", "3")) == 3


def test_generate_streams_words(capsys, tiny_model_path):
    code, out, _ = run(capsys, "generate", "The sea", "-m", str(tiny_model_path), "--stream", "--max-new-tokens", "4")
    assert code == 0 and out.startswith("The sea")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "zorblax", "-m", "{model}"], "none of the seed's words"),
        (["generate", "", "-m", "{model}"], "the seed is empty"),
        (["generate", "The sea", "-m", "{model}", "--temperature", "0"], "temperature must be above 0"),
        (["generate", "The sea", "-m", "{model}", "--top-p", "2"], "top_p must be in (0, 1]"),
        (["generate", "The sea", "-m", "no-such-model"], "no model named 'no-such-model'"),
        (["eval", "{tmp}/missing.txt", "-m", "{model}"], "no such file"),
        (["train", "{tmp}/empty.txt"], "the file is empty"),
        (["train", "{tmp}/binary.txt"], "looks like a binary file"),
        (["train", "{tmp}/latin1.txt"], "not UTF-8 text"),
        (["train", "{tmp}/small.txt"], "at least 2,000 are needed"),
        (["train", "verse", "--name", "no spaces please"], "bad model name"),
        (["train", "verse", "--epochs", "0"], "epochs must be at least 1"),
        (["train", "verse", "--window", "0"], "window must be at least 1"),
        (["train", "verse", "--units", "-1"], "units must be at least 1"),
        (["train", "verse", "--dropout", "1.5"], "dropout must be in [0, 1)"),
        (["train", "verse", "--weight-drop", "1"], "weight_drop must be in [0, 1)"),
        (["train", "verse", "--window", "40", "--weight-drop", "0.3"], "weight_drop needs a window of at most 32"),
        (["train", "verse", "--learning-rate", "0"], "learning_rate must be positive"),
        (["train", "verse", "--patience", "0"], "patience must be at least 1"),
        (["train", "verse", "--tokenizer", "klingon"], "tokenizer must be 'words' or 'whitespace'"),
        (["train", "verse", "--architecture", "gpt"], "architecture must be"),
        (["train", "verse", "--lr-decay", "0"], "lr_decay must be in (0, 1]"),
        (["train", "verse", "--matmuls", "float8"], "matmuls must be 'auto', 'float32', 'bfloat16'"),
        (["generate", "The sea", "-m", "{tmp}"], "not a complete model bundle"),
    ],
)
def test_user_mistakes_exit_2_with_one_line(capsys, tmp_path, tiny_model_path, argv, message):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.txt").write_bytes(bytes(range(256)))
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "small.txt").write_text("only a few words")
    (tmp_path / "config.json").write_text("{}")
    argv = [a.format(model=tiny_model_path, tmp=tmp_path) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "x", "--max-new-tokens", "many"], "--max-new-tokens: expected a whole number, got 'many'"),
        (["train", "verse", "--epochs", "none"], "--epochs: expected a whole number, got 'none'"),
        (["train", "verse", "--dropout", "lots"], "--dropout: expected a number or \"none\", got 'lots'"),
        (["nosuch"], "invalid choice: 'nosuch'"),
    ],
)
def test_bad_option_values_end_in_one_line_naming_the_help(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.count("\n") == 1 and "--help'" in err


def test_none_given_for_a_setting_that_may_be_none_is_kept():
    args = build_parser().parse_args(["train", "verse", "--max-minutes", "none", "--no-anneal"])
    assert _dataclass_values(args, TrainConfig) == {"max_minutes": None, "anneal": False}  # 10 minutes unless given
    assert _dataclass_values(build_parser().parse_args(["train", "verse"]), TrainConfig) == {}


def test_real_command_prints_no_traceback_for_a_missing_model(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "generate", "hi", "-m", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("continuo: error:")
    assert "Traceback" not in proc.stderr and "absl" not in proc.stderr


def test_over_large_file_is_refused(capsys, tmp_path, monkeypatch):
    from core.settings import get_settings

    big = tmp_path / "big.txt"
    big.write_text("the sea " * 20_000)
    monkeypatch.setenv("CONTINUO_MAX_FILE_MB", "0.1")
    get_settings.cache_clear()
    code, _, err = run(capsys, "train", str(big))
    assert code == 2 and "over the 0.1 MB limit" in err and "CONTINUO_MAX_FILE_MB" in err


@pytest.mark.slow
def test_train_stopped_by_sigterm_keeps_its_checkpoint_and_a_rerun_resumes(tmp_path, continuo_home):
    import os
    import signal
    import time

    from testdata import REPO

    argv = [sys.executable, "-c", "import sys; from core.cli import main; sys.exit(main())", "train", str(VERSE)]
    argv += ["--name", "mine", "--window", "8", "--embedding-dim", "16", "--units", "16", "--epochs", "4"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CONTINUO_HOME": str(continuo_home)}
    process = subprocess.Popen([*argv, "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not list((continuo_home / "checkpoints" / "mine").rglob("state.npz")):  # its first epoch ended
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("continuo: stopped by SIGTERM") and last.endswith("run it again to resume")
    assert "Traceback" not in err
    assert not (continuo_home / "models" / "mine").exists()  # nothing half-written

    rerun = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from epoch" in rerun.stdout + rerun.stderr
    assert (continuo_home / "models" / "mine" / "model.keras").exists()
