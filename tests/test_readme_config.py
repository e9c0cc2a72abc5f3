"""Every ```yaml block of README.md is a gateway config that loads as printed, with none of the
variables it mentions set (an operator copies before exporting)."""

import re
from pathlib import Path

import pytest

from gateway.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_yaml_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_yaml_loads(tmp_path: Path, block: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(block)
    load_config(path, env={})
    # and with the variables set, they are used
    names = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", block))
    env = {name: _value(name) for name in names}
    config = load_config(path, env=env)
    if "GATEWAY_MASTER_KEY" in names:
        assert config.master_key is not None
        assert config.master_key.get_secret_value() == env["GATEWAY_MASTER_KEY"]


def _value(name: str) -> str:
    if name in ("DATABASE_URL",):
        return "postgresql://u:p@127.0.0.1/db"
    if name.endswith("_URL"):
        return "http://127.0.0.1:1"
    return f"value-of-{name.lower()}"
