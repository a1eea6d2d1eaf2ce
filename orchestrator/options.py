"""Command-line options derived from the declarations they expose (shared/train_config.py)."""

from __future__ import annotations

import click

from dataclasses import fields

from shared.train_config import TrainConfig, option_fields

_CLICK_TYPES = {"int": int, "float": float, "str": str}


def train_config_options(command):
    """Decorate a command with one option per field of TrainConfig marked for the command line."""
    for f in reversed(option_fields()):
        meta = f.metadata
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        if meta["switch"]:
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=meta["help"])
        elif f.type == "bool":
            option = click.option(flag, f.name, is_flag=True, default=f.default, help=meta["help"])
        else:
            kind = click.Choice(meta["choices"], case_sensitive=False) if meta["choices"] else _CLICK_TYPES.get(f.type, str)
            option = click.option(flag, f.name, type=kind, default=f.default, show_default=True, help=meta["help"])
        command = option(command)
    return command


def aggregate_option(command):
    """--aggregate for the commands that read a finished run (report, evaluate, predict): the
    TrainConfig field's choices, no default (the run's own rule)."""
    f = next(f for f in fields(TrainConfig) if f.name == "aggregate")
    return click.option("--aggregate", type=click.Choice(f.metadata["choices"], case_sensitive=False), default=None,
                        help=f.metadata["help"] + " [default: the run's own]")(command)
