"""Config: defaults, file, environment, validation, and the example file kept in step."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gateway.config import SECTIONS, Config, env_name, load_config, render_example
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_without_file_or_env() -> None:
    config = load_config(env={})
    assert config == Config()
    assert config.public_url == "http://127.0.0.1:8080"
    assert config.database_path == Path("data/wagate.db")


def test_example_file_is_the_rendered_defaults() -> None:
    text = (ROOT / "config.example.toml").read_text()
    assert text == render_example(), "regenerate config.example.toml with render_example()"
    assert load_config(ROOT / "config.example.toml", env={}) == Config()


def test_example_documents_every_setting() -> None:
    text = render_example()
    for section, cls in SECTIONS.items():
        assert f"[{section}]" in text
        for f in dataclasses.fields(cls):
            assert f"\n{f.name} = " in text
            assert env_name(section, f) in text


def test_file_then_env_override(tmp_path: Path) -> None:
    path = tmp_path / "wagate.toml"
    path.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[sessions]\ndriver = "simulated"\n')
    config = load_config(path, env={})
    assert config.server.port == 9000
    assert config.public_url == "http://127.0.0.1:9000"
    config = load_config(path, env={"WAGATE_PORT": "9100", "WAGATE_PUBLIC_URL": "https://wa.x/"})
    assert config.server.port == 9100
    assert config.public_url == "https://wa.x"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[storage]\ndata_dir = "/srv/wagate"\n')
    assert load_config(env={"WAGATE_CONFIG": str(path)}).data_dir == Path("/srv/wagate")


def test_named_aliases_and_generic_names() -> None:
    config = load_config(env={
        "WAGATE_DATA_DIR": "/d", "WAGATE_HOST": "::1", "WAGATE_DRIVER": "simulated",
        "WAGATE_SERVER_ACCESS_LOG": "off", "WAGATE_SIMULATED_QR_CODES": "2",
    })
    assert config.storage.data_dir == "/d"
    assert config.public_url == "http://[::1]:8080"
    assert config.server.access_log is False
    assert config.simulated.qr_codes == 2


@pytest.mark.parametrize(("env", "named"), [
    ({"WAGATE_PORT": "eighty"}, "WAGATE_PORT"),
    ({"WAGATE_PORT": "70000"}, "WAGATE_PORT"),
    ({"WAGATE_DRIVER": "baileys"}, "WAGATE_DRIVER"),
    ({"WAGATE_SERVER_ACCESS_LOG": "maybe"}, "WAGATE_SERVER_ACCESS_LOG"),
    ({"WAGATE_SESSIONS_BACKOFF_INITIAL": "10", "WAGATE_SESSIONS_BACKOFF_MAX": "1"},
     "backoff_max"),
])
def test_bad_environment_values_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(env=env)


@pytest.mark.parametrize(("text", "named"), [
    ("[server]\nport = \"80\"\n", "server.port"),
    ("[server]\nprot = 80\n", "server.prot"),
    ("[servers]\n", "servers"),
    ("[server\n", "config file"),
    ("server = 1\n", "server"),
])
def test_bad_file_names_the_setting(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=named):
        load_config(path, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
