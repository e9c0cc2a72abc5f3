from pathlib import Path

import pytest

from gateway.config import ConfigError, load_config


def test_zero_config_serves_the_providers_that_have_keys() -> None:
    config = load_config(env={"OLLAMA_API_KEY": "k1", "DEEPSEEK_API_KEY": "k2"})
    assert list(config.usable_providers()) == ["deepseek", "ollama"]
    assert config.providers["deepseek"].base_url == "https://api.deepseek.com"
    assert config.providers["openrouter"].base_url == "https://openrouter.ai/api/v1"
    assert config.providers["ollama"].base_url == "https://ollama.com"
    assert config.master_key is None


def test_base_urls_and_master_key_come_from_the_environment() -> None:
    config = load_config(env={
        "DEEPSEEK_API_KEY": "k", "DEEPSEEK_BASE_URL": "http://127.0.0.1:9000",
        "GATEWAY_MASTER_KEY": "sk-master",
    })
    assert config.providers["deepseek"].base_url == "http://127.0.0.1:9000"
    assert config.master_key is not None
    assert config.master_key.get_secret_value() == "sk-master"


def test_yaml_adds_aliases_routes_and_provider_settings(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(
        """
aliases:
  fast: {model: deepseek-v4-flash, thinking: false}
providers:
  openrouter:
    api_key: ${MY_OR_KEY}
    extra_body: {provider: {order: [deepinfra]}}
  backup:
    kind: deepseek
    base_url: http://127.0.0.1:9999
    api_key: literal-key
    models: {deepseek-v4-flash: deepseek-v4-flash}
routes:
  deepseek-v4-flash:
    - provider: backup
    - provider: openrouter
"""
    )
    config = load_config(path, env={"MY_OR_KEY": "or-key"})
    assert config.aliases["fast"].thinking is False
    openrouter = config.providers["openrouter"]
    assert openrouter.api_key is not None and openrouter.api_key.get_secret_value() == "or-key"
    # merged field by field over the defaults
    assert openrouter.base_url == "https://openrouter.ai/api/v1"
    assert openrouter.extra_body == {"provider": {"order": ["deepinfra"]}}
    route = config.routes["deepseek-v4-flash"]
    assert route.strategy == "ordered"
    assert [t.provider for t in route.targets] == ["backup", "openrouter"]


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("port: seventy", "port"),
        ("providers:\n  deepseek:\n    base_url: ftp://x", "providers.deepseek.base_url"),
        ("providers:\n  deepseek:\n    timeouts: {connect: -1}",
         "providers.deepseek.timeouts.connect"),
        ("providers:\n  x:\n    kind: azure\n    base_url: http://a", "providers.x.kind"),
        ("aliases:\n  fast: {model: gpt-5}", "aliases.fast.model"),
        ("routes:\n  deepseek-v4-flash:\n    - provider: nobody",
         "routes.deepseek-v4-flash[0].provider"),
        ("routes:\n  deepseek-v4-flash:\n    strategy: fastest\n    targets: []",
         "routes.deepseek-v4-flash.strategy"),
        ("routing:\n  breaker: {failure_ratio: 2}", "routing.breaker.failure_ratio"),
        ("colour: blue", "colour"),
        ("- just\n- a list", "top level must be a mapping"),
        ("master_key: ${NOT_SET_ANYWHERE:?}", "NOT_SET_ANYWHERE"),
        ("host: http://${NOT_SET_EITHER}", "NOT_SET_EITHER"),
    ],
)
def test_bad_config_is_refused_naming_the_field(
    tmp_path: Path, yaml_text: str, fragment: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert fragment in str(info.value)


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "absent.yaml", env={})


@pytest.mark.parametrize(
    ("yaml_text", "line"),
    [
        ("routes:\n  deepseek-v4-flash:\n    - provider: deepseeek",
         "  routes.deepseek-v4-flash[0].provider: unknown provider 'deepseeek' "
         "(did you mean 'deepseek'?)"),
        ("provider:\n  deepseek: {}", "  provider: unknown field (did you mean 'providers'?)"),
        ("routing:\n  max_attempt: 2",
         "  routing.max_attempt: unknown field (did you mean 'max_attempts'?)"),
        ("providers:\n  deepseek:\n    timeout: {connect: 1}",
         "  providers.deepseek.timeout: unknown field (did you mean 'timeouts'?)"),
        ("providers:\n  deepseek:\n    timeouts: {conect: 1}",
         "  providers.deepseek.timeouts.conect: unknown field (did you mean 'connect'?)"),
        ("aliases:\n  fast: {model: deepseek-v4-flsh}",
         "  aliases.fast.model: unknown model 'deepseek-v4-flsh' "
         "(did you mean 'deepseek-v4-flash'?)"),
        ("routes:\n  deepseek-v4-pr: [{provider: deepseek}]",
         "  routes.deepseek-v4-pr: unknown model 'deepseek-v4-pr' "
         "(did you mean 'deepseek-v4-pro'?)"),
        ("zzz_nothing: 1", "  zzz_nothing: unknown field"),
    ],
)
def test_errors_name_the_field_plainly_and_suggest_a_name(
    tmp_path: Path, yaml_text: str, line: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert line in text.splitlines(), text
    assert "Value error" not in text and "(top level)" not in text


def test_every_bad_reference_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("aliases:\n  a: {model: nope}\nroutes:\n  deepseek-v4-flash:\n"
                    "    - provider: one\n    - provider: two\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    assert "aliases.a.model" in text
    assert "[0].provider: unknown provider 'one'" in text
    assert "[1].provider: unknown provider 'two'" in text
