"""Storage: table definitions (tables.py), engines for Postgres or SQLite (engine.py), alembic
migrations run from code (migrate.py), batch inserts and usage reports (queries.py)."""
