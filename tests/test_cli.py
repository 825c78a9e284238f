"""The `zoo` command line: help, listing, and misuse exits with code 2."""

import pytest

from zoo.cli.main import main

from helpers import zoo_cli


def test_help_teaches_with_examples():
    result = zoo_cli("--help", check=True)
    assert "zoo run classification" in result.stdout and "--plugin" in result.stdout


def test_list_and_info():
    listed = zoo_cli("list", check=True).stdout
    assert "classification" in listed and "lenet" in listed and "mnist-sample" in listed
    info = zoo_cli("info", "classification", check=True).stdout
    assert "optimizer.lr" in info and "accuracy" in info and "folder:PATH" in info


def test_predict_help_lists_task_arguments():
    result = zoo_cli("predict", "classification", "--help", check=True)
    assert "--top-k" in result.stdout and "IMAGE" in result.stdout


def test_misuse_exits_2_with_one_line_from_the_command(tmp_path):
    """A real `zoo` process: exit code 2 and one line, no traceback."""
    result = zoo_cli("run", "clasification", cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "did you mean 'classification'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "classification", "--set", "optimizer.lr=fast"], "expected float"),
    (["run", "classification", "--set", "train.epochz=3"], "did you mean 'train.epochs'"),
    (["run", "classification", "--model", "lenett"], "did you mean 'lenet'"),
    (["run", "classification", "--data", "mnsit"], "did you mean 'mnist'"),
    (["eval", "classification", "--workdir", "/nonexistent/run"], "no zoo run here"),
    (["run", "classification", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_misuse_is_one_line_and_exit_2(args, message, capsys):
    """The same path in this process (each case in a fresh `zoo` would pay JAX's import)."""
    assert main(args) == 2, args
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err, (args, err)

