"""Options generated from a config dataclass: one per field, help from its comment, only what was set overrides."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pytest
import typer
from typer.testing import CliRunner

from ragenv.cli_config import config_options, field_comments

pytestmark = pytest.mark.unit  # model-free: the fast tier


@dataclass(frozen=True)
class ToyConfig:
    steps: int = 10  # environment steps to train for
    rate: float = 1e-3  # the learning rate
    keys: tuple[str, ...] = ("a", "b")  # observation keys the policy reads
    window: float | None = None  # an optional bound
    normalize: bool = True
    device: str = "cpu"  # where it runs


def make_app(seen: list):
    app = typer.Typer()

    @app.command()
    @config_options(ToyConfig, skip=("device",))
    def train(output: str = typer.Option(...), device: str = typer.Option("auto"),
              config_overrides: Optional[dict] = None):
        seen.append((output, device, ToyConfig(**config_overrides)))

    return app


def test_each_field_is_an_option_and_only_what_is_set_overrides():
    seen: list = []
    app = make_app(seen)
    result = CliRunner().invoke(app, ["--output", "x", "--steps", "3", "--keys", "c, d", "--no-normalize",
                                      "--window", "0.5"])
    assert result.exit_code == 0, result.output
    assert seen == [("x", "auto", ToyConfig(steps=3, keys=("c", "d"), window=0.5, normalize=False))]
    CliRunner().invoke(app, ["--output", "y"])
    assert seen[-1] == ("y", "auto", ToyConfig())  # nothing set: the config's defaults


def test_help_comes_from_the_field_comments_and_names_the_default():
    assert field_comments(ToyConfig)["rate"] == "the learning rate"
    result = CliRunner().invoke(make_app([]), ["--help"], env={"COLUMNS": "200"})
    assert "--rate" in result.output and "the learning rate (default: 0.001)." in result.output
    assert "observation keys the policy reads (default: a,b)." in result.output
    assert "an optional bound (default: unset)." in result.output


def test_a_command_must_take_the_overrides_and_not_redeclare_a_field():
    with pytest.raises(TypeError, match="config_overrides"):
        config_options(ToyConfig)(lambda output="x": None)
    with pytest.raises(TypeError, match="declares 'steps'"):
        config_options(ToyConfig)(lambda steps=1, config_overrides=None: None)
