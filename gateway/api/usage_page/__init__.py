"""The usage page `/ui`: period picker, cards, spend chart, tables, request log, CSV export.

queries.py (SQL: rollups for aggregates, raw rows for the log), period.py, views.py (rows ->
cards, series, tables), chart.py (SVG), html.py, csv_export.py, load.py (request -> data),
access.py (who may see what). The routes are in gateway/api/ui.py.
"""
