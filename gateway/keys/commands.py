"""`gateway keys ...` and `gateway teams ...`: the admin API from a terminal.

The commands talk to a running gateway over HTTP (`--url`, or GATEWAY_URL) with the master key
(`--master-key`, or GATEWAY_MASTER_KEY), so every write goes through the same validation and
reaches every process's cache the same way as an API call. `--json` prints the API's JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import orjson
import typer

from gateway.keys.principal import ROLES

keys_cli = typer.Typer(no_args_is_help=True, help="Create, list, update and revoke gateway keys.")
teams_cli = typer.Typer(no_args_is_help=True, help="Teams: limits and budgets shared by keys.")

Url = Annotated[str | None, typer.Option(
    "--url", envvar="GATEWAY_URL", show_default=False,
    help="The running gateway (default: the host and port of the config `serve` uses, "
         "SWITCHYARD_CONFIG; else http://127.0.0.1:8000).")]
MasterKey = Annotated[str | None, typer.Option(
    "--master-key", envvar="GATEWAY_MASTER_KEY",
    help="The gateway's master key (not needed on loopback when none is set).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the API's JSON.")]
Wide = Annotated[bool, typer.Option("--wide", help="Every column (wider than 80).")]
Rpm = Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute.")]
Tpm = Annotated[int | None, typer.Option("--tpm", min=1, help="Tokens per minute.")]
BudgetUsd = Annotated[float | None, typer.Option("--budget", help="Budget in USD per period.")]
Meta = Annotated[list[str] | None, typer.Option("--meta", help="Metadata as k=v (repeatable).")]
DEFAULT_URL = "http://127.0.0.1:8000"
_ANY_ADDRESS = {"0.0.0.0", "::", ""}

KEY_COLUMNS = ("id", "name", "key_prefix", "team", "role", "models", "rpm", "tpm", "budget_usd",
               "budget_period", "expires_at", "revoked_at")
KEY_NARROW = ("id", "name", "key_prefix", "team", "models", "rpm", "budget_usd")  # fits 80
TEAM_COLUMNS = ("name", "rpm", "tpm", "budget_usd", "budget_period", "metadata", "created_at")
TEAM_NARROW = ("name", "rpm", "tpm", "budget_usd", "budget_period")
_CLEARABLE_KEY = {"team": "team", "models": "models", "rpm": "rpm", "tpm": "tpm",
                  "budget": "budget_usd", "expires": "expires_at"}
_CLEARABLE_TEAM = {"rpm": "rpm", "tpm": "tpm", "budget": "budget_usd"}


# ---- keys ------------------------------------------------------------------------------------

@keys_cli.command("create")
def create_key(
    name: Annotated[str | None, typer.Option(
        "--name", help="What the key is for (a viewer key: '<team> dashboard').")] = None,
    team: Annotated[str | None, typer.Option("--team", help="An existing team.")] = None,
    models: Annotated[str | None, typer.Option(
        "--models", help="Allowed models, comma-separated (aliases accepted).")] = None,
    role: Annotated[str, typer.Option(
        "--role", help="user (calls models) or viewer (reads its team's usage only; "
                       "needs --team).")] = "user",
    rpm: Rpm = None, tpm: Tpm = None, budget: BudgetUsd = None,
    period: Annotated[str, typer.Option("--period", help="day or month.")] = "month",
    expires: Annotated[str | None, typer.Option(
        "--expires", help="ISO date or datetime (UTC unless an offset is given).")] = None,
    meta: Meta = None, url: Url = None, master_key: MasterKey = None,
    as_json: AsJson = False,
) -> None:
    """Create a key. The key is printed once and cannot be shown again."""
    if role not in ROLES:
        _fail(f"--role must be one of {', '.join(ROLES)}")
    if role == "viewer" and not team:
        _fail("a viewer key needs --team (it sees that team's usage)")
    if name is None:
        if role != "viewer":
            _fail("--name is required (what the key is for)")
        name = f"{team} dashboard"
    body: dict[str, Any] = {"name": name, "budget_period": period,
                            "metadata": _meta(meta), "role": role}
    body.update(_set(team=team, rpm=rpm, tpm=tpm, budget_usd=budget, expires_at=expires))
    if models is not None:
        body["models"] = _split(models)
    data = _call("POST", "/admin/keys", url, master_key, body)
    if as_json:
        _print_json(data)
        return
    _fields(data, KEY_COLUMNS, "key created")
    typer.echo(f"key: {data['key']}")
    typer.secho("Store it now: it is not stored by the gateway and cannot be shown again.",
                err=True, fg=typer.colors.YELLOW)


@keys_cli.command("list")
def list_keys(
    team: Annotated[str | None, typer.Option("--team", help="Only this team's keys.")] = None,
    show_all: Annotated[bool, typer.Option(
        "--all", help="Include revoked keys.")] = False,
    url: Url = None, master_key: MasterKey = None, as_json: AsJson = False, wide: Wide = False,
) -> None:
    """List keys (never the keys themselves: only their prefixes)."""
    params = {"include_revoked": "true"} if show_all else {}
    if team:
        params["team"] = team
    data = _call("GET", "/admin/keys", url, master_key, params=params)
    if as_json:
        _print_json(data["data"])
        return
    _table(data["data"], KEY_COLUMNS if wide else KEY_NARROW, "keys", wide)


@keys_cli.command("update")
def update_key(
    key_id: Annotated[str, typer.Argument(help="The key's id.")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    team: Annotated[str | None, typer.Option("--team")] = None,
    models: Annotated[str | None, typer.Option("--models", help="Comma-separated.")] = None,
    rpm: Rpm = None, tpm: Tpm = None, budget: BudgetUsd = None,
    period: Annotated[str | None, typer.Option("--period", help="day or month.")] = None,
    expires: Annotated[str | None, typer.Option("--expires")] = None,
    meta: Annotated[list[str] | None, typer.Option(
        "--meta", help="Replaces the metadata: k=v (repeatable).")] = None,
    clear: Annotated[list[str] | None, typer.Option(
        "--clear", help="Remove: team, models, rpm, tpm, budget or expires (repeatable).")
    ] = None,
    url: Url = None, master_key: MasterKey = None, as_json: AsJson = False,
) -> None:
    """Change a key; other processes drop it from their caches at once."""
    body = _set(name=name, team=team, rpm=rpm, tpm=tpm, budget_usd=budget,
                budget_period=period, expires_at=expires)
    if models is not None:
        body["models"] = _split(models)
    if meta is not None:
        body["metadata"] = _meta(meta)
    body.update(_clear(clear, _CLEARABLE_KEY))
    data = _call("PATCH", f"/admin/keys/{key_id}", url, master_key, body)
    _show(data, KEY_COLUMNS, "key updated", as_json)


@keys_cli.command("revoke")
def revoke_key(
    key: Annotated[str, typer.Argument(
        help="The key's id, its name, or the key itself (sk-sy-...).", show_default=False)],
    url: Url = None, master_key: MasterKey = None, as_json: AsJson = False,
) -> None:
    """Revoke a key, in every gateway process within a second."""
    key_id = _find_key(key, url, master_key)
    data = _call("DELETE", f"/admin/keys/{key_id}", url, master_key)
    _show(data, KEY_COLUMNS, "key revoked", as_json)


def _find_key(ref: str, url: str | None, master_key: str | None) -> str:
    """An active key's id from its id, its name or the key a user holds. The key itself is
    never sent: it is matched by the prefix the gateway shows (`key_prefix`)."""
    from gateway.keys.tokens import display_prefix, looks_virtual

    keys = _call("GET", "/admin/keys", url, master_key)["data"]
    if looks_virtual(ref):
        prefix = display_prefix(ref)
        found = [k for k in keys if k["key_prefix"] == prefix]
        what = f"the key starting {prefix}"
    else:
        found = [k for k in keys if k["id"] == ref] or [k for k in keys if k["name"] == ref]
        what = f"the id or name {ref!r}"
    if not found:
        _fail(f"no active key has {what} (`gateway keys list` shows them)")
    if len(found) > 1:
        ids = ", ".join(f"{k['id']} ({k['name']})" for k in found)
        _fail(f"{len(found)} active keys match {what}: {ids}; revoke one by its id")
    return str(found[0]["id"])


# ---- teams -----------------------------------------------------------------------------------

@teams_cli.command("create")
def create_team(
    name: Annotated[str, typer.Argument(help="Letters, digits, '.', '_' or '-'.")],
    rpm: Rpm = None, tpm: Tpm = None, budget: BudgetUsd = None,
    period: Annotated[str, typer.Option("--period", help="day or month.")] = "month",
    meta: Meta = None, url: Url = None, master_key: MasterKey = None,
    as_json: AsJson = False,
) -> None:
    """Create a team; its limits and budget apply across all its keys."""
    body: dict[str, Any] = {"name": name, "budget_period": period, "metadata": _meta(meta)}
    body.update(_set(rpm=rpm, tpm=tpm, budget_usd=budget))
    data = _call("POST", "/admin/teams", url, master_key, body)
    _show(data, TEAM_COLUMNS, "team created", as_json)


@teams_cli.command("list")
def list_teams(url: Url = None, master_key: MasterKey = None,
               as_json: AsJson = False, wide: Wide = False) -> None:
    """List teams."""
    data = _call("GET", "/admin/teams", url, master_key)
    if as_json:
        _print_json(data["data"])
        return
    _table(data["data"], TEAM_COLUMNS if wide else TEAM_NARROW, "teams", wide)


@teams_cli.command("update")
def update_team(
    name: Annotated[str, typer.Argument(help="The team.")],
    rpm: Rpm = None, tpm: Tpm = None, budget: BudgetUsd = None,
    period: Annotated[str | None, typer.Option("--period", help="day or month.")] = None,
    meta: Annotated[list[str] | None, typer.Option(
        "--meta", help="Replaces the metadata: k=v (repeatable).")] = None,
    clear: Annotated[list[str] | None, typer.Option(
        "--clear", help="Remove: rpm, tpm or budget (repeatable).")] = None,
    url: Url = None, master_key: MasterKey = None, as_json: AsJson = False,
) -> None:
    """Change a team's limits or budget (applies to its keys at once)."""
    body = _set(rpm=rpm, tpm=tpm, budget_usd=budget, budget_period=period)
    if meta is not None:
        body["metadata"] = _meta(meta)
    body.update(_clear(clear, _CLEARABLE_TEAM))
    data = _call("PATCH", f"/admin/teams/{name}", url, master_key, body)
    _show(data, TEAM_COLUMNS, "team updated", as_json)


@teams_cli.command("delete")
def delete_team(
    name: Annotated[str, typer.Argument(help="The team (it must have no active keys).")],
    url: Url = None, master_key: MasterKey = None, as_json: AsJson = False,
) -> None:
    """Delete a team that has no active keys."""
    data = _call("DELETE", f"/admin/teams/{name}", url, master_key)
    _show(data, TEAM_COLUMNS, "team deleted", as_json)


# ---- plumbing --------------------------------------------------------------------------------

def _call(method: str, path: str, url: str | None, master_key: str | None,
          body: dict[str, Any] | None = None, params: dict[str, str] | None = None) -> Any:
    url = gateway_url(url)
    headers = {"authorization": f"Bearer {master_key}"} if master_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=15) as client:
            response = client.request(method, path, json=body, params=params)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the gateway at {url} ({type(exc).__name__}): is `gateway serve` "
              "running there? Pass --url or set GATEWAY_URL to its address")
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        message = (data or {}).get("error", {}).get("message") if isinstance(data, dict) else None
        _fail(f"{response.status_code}: {message or response.text[:200]}"
              + _HINTS.get(response.status_code, ""))
    return data


_HINTS = {
    401: " (pass the gateway's master key with --master-key or set GATEWAY_MASTER_KEY)",
    403: " (these commands need the master key, not a gateway key: --master-key or "
         "GATEWAY_MASTER_KEY)",
}


def gateway_url(given: str | None) -> str:
    """Where the gateway is: --url, else GATEWAY_URL (typer reads both), else the host and
    port of the config file `serve` would use (SWITCHYARD_CONFIG), else the default."""
    if given:
        return given
    import os
    from pathlib import Path

    from gateway.config import ConfigError, load_config

    path = os.environ.get("SWITCHYARD_CONFIG")
    try:
        config = load_config(Path(path) if path else None)
    except ConfigError:
        return DEFAULT_URL
    host = "127.0.0.1" if config.host in _ANY_ADDRESS else config.host
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{config.port}"


def _fail(message: str) -> Any:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=1)


def _set(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _clear(fields: list[str] | None, allowed: dict[str, str]) -> dict[str, None]:
    out: dict[str, None] = {}
    for name in fields or []:
        if name not in allowed:
            _fail(f"--clear takes one of {', '.join(allowed)}, not {name!r}")
        out[allowed[name]] = None
    return out


def _split(models: str) -> list[str]:
    return [m.strip() for m in models.split(",") if m.strip()]


def _meta(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            _fail(f"--meta takes k=v, not {pair!r}")
        out[name] = value
    return out


def _show(data: dict[str, Any], columns: tuple[str, ...], title: str, as_json: bool) -> None:
    if as_json:
        _print_json(data)
    else:
        _fields(data, columns, title)


def _print_json(data: Any) -> None:
    typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def _fields(row: dict[str, Any], columns: tuple[str, ...], title: str) -> None:
    """One record as `field  value` lines: every field, in any terminal width."""
    typer.echo(f"{title}:")
    width = max(len(name) for name in columns)
    for name in columns:
        typer.echo(f"  {name.replace('_', ' '):{width}}  {_cell(row.get(name))}")


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...], title: str,
           wide: bool = False) -> None:
    """Fits the terminal (80 columns when not a terminal): long cells wrap; `--wide` asks for
    every column at full width instead."""
    from rich.console import Console  # imported here: `gateway serve` never needs it
    from rich.table import Table

    table = Table(title=title)
    for name in columns:
        table.add_column(name.replace("_", " "), overflow="fold",
                         no_wrap=name in ("id", "key_prefix"))
    for row in rows:
        table.add_row(*(_cell(row.get(name)) for name in columns))
    Console(width=240 if wide else None).print(table)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)
