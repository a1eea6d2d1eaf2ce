"""Command-line options derived from the declarations they expose (shared/train_config.py,
shared/ingest_params.py)."""

from __future__ import annotations

from dataclasses import fields

import click

from shared import ingest_params
from shared.train_config import TrainConfig, field_type, option_fields, option_flag


def train_config_options(command):
    """Decorate a command with one option per field of TrainConfig marked for the command line."""
    for f in reversed(option_fields()):
        meta = f.metadata
        flag = option_flag(f)
        if meta["switch"]:
            option = click.option(f"{flag}/--no-{flag[2:]}", f.name, default=None, help=meta["help"])
        elif field_type(f) is bool:
            option = click.option(flag, f.name, is_flag=True, default=f.default, help=meta["help"])
        else:
            if meta["choices"]:
                kind = click.Choice(meta["choices"], case_sensitive=False)
            else:  # a field with its own parser (replicas: auto or N) takes the text as given
                kind = str if meta["parse"] else field_type(f)
            option = click.option(flag, f.name, type=kind, default=f.default, show_default=True, help=meta["help"])
        command = option(command)
    return command


def ingest_params_options(command):
    """Decorate a command with one option per field of IngestParams marked for the command line.
    A valued option's default is None (not given): IngestParams.from_options takes the setting."""
    for f in reversed(ingest_params.option_fields()):
        flag, kind, text = ingest_params.option_flag(f), ingest_params.value_type(f), ingest_params.option_help(f)
        if kind is bool:
            option = click.option(flag, f.name, is_flag=True, help=text)
        elif f.metadata["choices"]:
            option = click.option(flag, f.name, type=click.Choice(f.metadata["choices"], case_sensitive=False),
                                  default=None, help=text)
        else:
            option = click.option(flag, f.name, type=kind, default=None, help=text)
        command = option(command)
    return command


def aggregate_option(command):
    """--aggregate for the commands that read a finished run (report, evaluate, predict): the
    TrainConfig field's choices, no default (the run's own rule)."""
    f = next(f for f in fields(TrainConfig) if f.name == "aggregate")
    return click.option("--aggregate", type=click.Choice(f.metadata["choices"], case_sensitive=False), default=None,
                        help=f.metadata["help"] + " [default: the run's own]")(command)
