from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config
from gateway.envexpand import expand


def test_shell_forms() -> None:
    env = {"SET": "v", "EMPTY": ""}
    data = {
        "plain": "${SET}", "inside": "a-${SET}-b", "default": "${UNSET:-d}",
        "empty_default": "${EMPTY:-d}", "dash_keeps_empty": "x${EMPTY-d}x",
        "dash_unset": "${UNSET-d}", "nested": "${UNSET:-${SET}}", "literal": "$${SET}",
        "not_ref": "$SET and ${", "list": ["${SET}", "${UNSET}", "z"], "num": 3,
    }
    out, missing = expand(data, env)
    assert missing == []
    assert out == {
        "plain": "v", "inside": "a-v-b", "default": "d", "empty_default": "d",
        "dash_keeps_empty": "xx", "dash_unset": "d", "nested": "v", "literal": "${SET}",
        "not_ref": "$SET and ${", "list": ["v", "z"], "num": 3,
    }


def test_unset_whole_references_leave_the_field_unset() -> None:
    out, missing = expand({"a": "${UNSET}", "b": "${UNSET:-}", "c": {"d": "${EMPTY:-}"}},
                          {"EMPTY": ""})
    assert (out, missing) == ({"c": {}}, [])


def test_every_missing_variable_is_named_with_its_field(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "master_key: ${MASTER:?set the admin token}\n"
        "providers:\n  deepseek:\n    base_url: https://${DS_HOST}/v1\n"
        "    api_key: ${DS_KEY:?}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    text = str(caught.value)
    assert "3 variables are missing" in text
    assert "${MASTER} (at master_key): set the admin token" in text
    assert "${DS_HOST} (at providers.deepseek.base_url)" in text
    assert "${DS_KEY} (at providers.deepseek.api_key): required" in text


def test_an_empty_default_is_no_master_key_never_the_literal(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("master_key: ${GATEWAY_MASTER_KEY:-}\nport: ${PORT:-9001}\n")
    config = load_config(path, env={})
    assert config.master_key is None
    assert config.port == 9001
    config = load_config(path, env={"GATEWAY_MASTER_KEY": "sk-m", "PORT": "9002"})
    assert config.master_key is not None and config.master_key.get_secret_value() == "sk-m"
    assert config.port == 9002


def test_values_with_yaml_syntax_cannot_change_the_structure(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("providers:\n  deepseek:\n    api_key: ${KEY}\n")
    config = load_config(path, env={"KEY": "a: b\n- c # d"})
    key = config.providers["deepseek"].api_key
    assert key is not None and key.get_secret_value() == "a: b\n- c # d"
