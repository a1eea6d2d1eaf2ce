"""`orchestrator serve` (the HTTP API and web page) and `orchestrator api-key create|list|revoke`."""

from __future__ import annotations

import os

import click

from orchestrator.output import json_option, print_json


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--run", "run_id", help="The run whose model judges (default: the latest finished run).")
@click.option("--no-auth", is_flag=True, help="Serve without API keys: allowed on 127.0.0.1 only.")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default="the CPU count",
              help="Local predict worker processes (embedded mode).")
def serve_command(host, port, run_id, no_auth, workers):
    """Judge videos over HTTP: POST /v1/judgements, a web page at /, docs at /docs."""
    import uvicorn

    from orchestrator.serve.app import create_app
    from orchestrator.serve.runner import check_and_configure, embedded_workers
    from shared.errors import InputError

    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    config = check_and_configure(host, run_id, no_auth)
    click.echo(f"judging with run {config.run_id} ({config.model['backbone']}, threshold "
               f"{config.model['threshold']:.3f}) on http://{host}:{port}/", err=True)
    uvicorn.run(create_app(config, lifespan=embedded_workers(workers)), host=host, port=port, log_level="info",
                timeout_graceful_shutdown=10)


@click.group("api-key")
def api_key_group():
    """Keys of the HTTP API (only their hashes are stored)."""


@api_key_group.command("create")
@click.argument("name")
@json_option
def create_command(name, as_json):
    """Make a key named NAME and print it once."""
    from orchestrator.database import open_database
    from orchestrator.serve.keys import create_key

    open_database()
    made = create_key(name)
    if as_json:
        print_json(made)
    else:
        click.echo(made["key"])
        click.echo(f"API key {made['name']!r}: shown once, only its hash is stored", err=True)


@api_key_group.command("list")
@json_option
def list_command(as_json):
    """Every key: name, first characters, created, revoked."""
    from orchestrator.database import open_database
    from orchestrator.serve.keys import list_keys

    open_database()
    keys = list_keys()
    if as_json:
        print_json(keys)
        return
    for key in keys:
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        click.echo(f"{key['name']}\t{key['prefix']}...\tcreated {key['created_at']}\t{state}")


@api_key_group.command("revoke")
@click.argument("name")
@json_option
def revoke_command(name, as_json):
    """Refuse the key named NAME from now on (its judgements are kept)."""
    from orchestrator.database import open_database
    from orchestrator.serve.keys import revoke_key

    open_database()
    revoked = revoke_key(name)
    if as_json:
        print_json(revoked)
    else:
        click.echo(f"API key {revoked['name']!r} revoked")
