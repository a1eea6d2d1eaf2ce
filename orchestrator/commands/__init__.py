"""The commands, grouped by what they touch; cli.py registers everything listed here. Each parses,
calls one function (orchestrator.jobs for work, workers.planning for a read) and prints."""

from orchestrator.commands.data import db_group, sample_data_command
from orchestrator.commands.demo import demo_command
from orchestrator.commands.ingest import ingest_command
from orchestrator.commands.serve import api_key_group, serve_command
from orchestrator.commands.status import datasets_command, export_command, status_command
from orchestrator.commands.storage import storage_group
from orchestrator.commands.train import (
    evaluate_command, export_model_command, predict_command, report_command, runs_command, train_command,
)

ALL_COMMANDS = [
    sample_data_command, ingest_command, datasets_command, status_command, export_command,
    train_command, evaluate_command, report_command, runs_command, predict_command, export_model_command,
    demo_command, db_group, serve_command, api_key_group, storage_group,
]
