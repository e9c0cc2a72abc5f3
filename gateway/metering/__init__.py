"""Metering: usage events -> priced rows -> the database, never on the request's hot path.

prices.py (the price book as data), cost.py (tokens x prices), rows.py (event -> row),
spool.py (local append-only fallback), writer.py (the batching sink), setup.py (from config).
"""
