"""The `zoo` command line: help, listing, and misuse exits with code 2."""

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


def test_misuse_exits_2_with_one_line(tmp_path):
    cases = [
        (["run", "clasification"], "did you mean 'classification'"),
        (["run", "classification", "--set", "optimizer.lr=fast"], "expected float"),
        (["run", "classification", "--set", "train.epochz=3"], "did you mean 'train.epochs'"),
        (["run", "classification", "--model", "lenett"], "did you mean 'lenet'"),
        (["run", "classification", "--data", "mnsit"], "did you mean 'mnist'"),
        (["eval", "classification", "--workdir", "/nonexistent/run"], "no zoo run here"),
        (["run", "classification", "--bogus"], "unrecognized arguments: --bogus"),
    ]
    for args, message in cases:
        result = zoo_cli(*args, cwd=tmp_path)  # not where a real runs/classification may be
        assert result.returncode == 2, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
