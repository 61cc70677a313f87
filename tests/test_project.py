"""The spaCy project in projects/bbc: project.yml passes weasel's schema and
`spacy project document`, every command line parses against the real CLI it calls
(spaCy's or ours), every config override names a setting of the config, every path it
reads exists in the repository or is written by an earlier command of `all`, and what
the workflow writes is ignored by git. The workflow itself is not run here (minutes);
`spacy project run all projects/bbc` is."""
from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "projects" / "bbc"
OUR_CLI = "spacy_sparse_expert.cli.main"


@pytest.fixture(scope="module")
def config() -> Dict[str, Any]:
    from weasel.util import load_project_config

    # validates against weasel's ProjectConfigSchema and interpolates ${vars...}
    return load_project_config(PROJECT)


@pytest.fixture(scope="module")
def commands(config: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {cmd["name"]: cmd for cmd in config["commands"]}


@pytest.fixture()
def in_project_run(commands: Dict[str, Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory as the commands see it at run time: the repository's inputs at
    ../../ and every command's outputs in place (empty stand-ins), as spaCy's CLI checks
    that the paths it is given exist."""
    root = tmp_path / "repo"
    project = root / "projects" / "bbc"
    project.mkdir(parents=True)
    for top in ("configs", "knowledge"):
        (root / top).symlink_to(REPO / top, target_is_directory=True)
    for cmd in commands.values():
        for out in cmd.get("outputs", []):
            path = project / out
            if path.suffix:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            else:
                path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(project)
    return project


def _split(line: str) -> List[str]:
    return shlex.split(line)


def _typer_command(app: Any, names: List[str]) -> Tuple[Any, List[str]]:
    """The click command of `app` that `names` leads to, and the arguments after it."""
    from typer.main import get_command

    command = get_command(app)
    rest = list(names)
    while getattr(command, "commands", None) and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def _parse(app: Any, argv: List[str]) -> Any:
    command, rest = _typer_command(app, argv)
    assert not getattr(command, "commands", None), f"{argv}: names a command group, not a command"
    return command.make_context(command.name, rest)  # raises on unknown or missing options


def test_project_yml_validates_and_documents(config: Dict[str, Any], tmp_path: Path) -> None:
    from weasel.cli.document import project_document
    from weasel.schemas import ProjectConfigSchema, validate

    assert validate(ProjectConfigSchema, config) == []
    readme = tmp_path / "README.md"
    project_document(PROJECT, output_file=readme)
    text = readme.read_text(encoding="utf-8")
    for cmd in config["commands"]:
        assert f"`{cmd['name']}`" in text


def test_workflow_all_covers_the_whole_chain(config: Dict[str, Any], commands: Dict[str, Dict[str, Any]]) -> None:
    assert config["workflows"]["all"] == ["kb", "corpus", "train", "evaluate", "distill", "evaluate-student",
                                          "package"]
    assert set(config["workflows"]["all"]) == set(commands)


def test_every_dependency_exists_or_is_made_earlier(config: Dict[str, Any],
                                                    commands: Dict[str, Dict[str, Any]]) -> None:
    made: List[str] = []
    for name in config["workflows"]["all"]:
        cmd = commands[name]
        for dep in cmd.get("deps", []):
            if dep.startswith("../"):
                assert (PROJECT / dep).exists(), f"{name}: {dep} is not in the repository"
            else:
                assert any(dep == out or dep.startswith(out.rstrip("/") + "/") for out in made), (
                    f"{name}: {dep} is neither in the repository nor an output of an earlier command")
        # every output is below the project folder (and so ignored by its .gitignore)
        for out in cmd.get("outputs", []):
            assert not out.startswith(("/", "..")), f"{name}: output {out} is outside projects/bbc"
        made += cmd.get("outputs", [])


def test_every_repository_path_in_a_script_exists(commands: Dict[str, Dict[str, Any]]) -> None:
    for name, cmd in commands.items():
        for line in cmd["script"]:
            for token in _split(line):
                if token.startswith("../"):
                    assert (PROJECT / token).exists(), f"{name}: {token} does not exist"


def test_our_commands_parse_against_the_cli(commands: Dict[str, Dict[str, Any]], in_project_run: Path) -> None:
    from spacy_sparse_expert.cli.main import app

    from spacy.cli._util import parse_config_overrides
    from thinc.api import Config

    from spacy_sparse_expert.distill.config import student_config_text

    used = []
    for name, cmd in commands.items():
        for line in cmd["script"]:
            argv = _split(line)
            if argv[:3] == ["python", "-m", OUR_CLI]:
                ctx = _parse(app, argv[3:])
                used.append(ctx.command.name)
                if ctx.command.name == "distill":
                    # distill reads what it does not know as config overrides, as spacy train
                    # does: a mistyped option would become one, so each must apply
                    Config().from_str(student_config_text(), overrides=parse_config_overrides(ctx.args))
    assert sorted(used) == ["bbc", "distill", "import"]


def test_spacy_commands_parse_and_overrides_name_config_settings(commands: Dict[str, Dict[str, Any]],
                                                                 in_project_run: Path) -> None:
    from spacy.cli._util import app as spacy_app
    from spacy.cli._util import parse_config_overrides
    from spacy.util import load_config

    used = []
    for name, cmd in commands.items():
        for line in cmd["script"]:
            argv = _split(line)
            if argv[:3] != ["python", "-m", "spacy"]:
                continue
            ctx = _parse(spacy_app, argv[3:])
            used.append(ctx.command.name)
            if ctx.command.name == "train":
                overrides = parse_config_overrides(ctx.args)
                assert set(overrides) >= {"paths.train", "paths.dev", "paths.kb", "paths.rules",
                                          "training.max_steps"}
                # an override of a setting the config lacks is an error here, as in spacy train
                load_config(ctx.params["config_path"], overrides=overrides, interpolate=False)
    assert sorted(used) == ["evaluate", "evaluate", "package", "train"]


def test_python_modules_of_the_scripts_are_importable(commands: Dict[str, Dict[str, Any]]) -> None:
    import importlib.util

    for name, cmd in commands.items():
        for line in cmd["script"]:
            argv = _split(line)
            assert argv[0] == "python", f"{name}: {line!r} does not run through spaCy's interpreter"
            assert argv[1] == "-m" and importlib.util.find_spec(argv[2]) is not None, f"{name}: {line!r}"


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="needs a git checkout")
def test_workflow_outputs_are_ignored_by_git(commands: Dict[str, Dict[str, Any]]) -> None:
    outputs = [out for cmd in commands.values() for out in cmd.get("outputs", [])] + ["project.lock"]
    for out in outputs:
        path = (PROJECT / out).relative_to(REPO)
        result = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO)
        assert result.returncode == 0, f"{path} is not ignored by git"



def test_project_readme_is_current(tmp_path: Path) -> None:
    from weasel.cli.document import project_document

    fresh = tmp_path / "README.md"
    project_document(PROJECT, output_file=fresh)
    assert (PROJECT / "README.md").read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "projects/bbc/README.md is stale: python -m spacy project document projects/bbc "
        "--output projects/bbc/README.md")
