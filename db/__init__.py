"""The SQL side: models, engine/session handling, migrations."""
