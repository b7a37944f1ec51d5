"""Configuration from OMEGAOPS_* variables, read when the app is created."""

import pytest

from app import create_app
from config import Config, DevelopmentConfig, ProductionConfig, TestConfig, config_from_env


def test_environment_variables_override_defaults():
    values = Config.from_env(
        {
            "OMEGAOPS_DATABASE_URL": "postgresql+psycopg://db/omegaops",
            "OMEGAOPS_REDIS_URL": "redis://r:6379/1",
            "OMEGAOPS_MAX_CONTENT_LENGTH": "2048",
            "OMEGAOPS_SESSION_COOKIE_SECURE": "yes",
        }
    )
    assert values["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://db/omegaops"
    assert values["REDIS_URL"] == "redis://r:6379/1"
    assert values["MAX_CONTENT_LENGTH"] == 2048
    assert values["SESSION_COOKIE_SECURE"] is True


def test_default_database_is_sqlite_in_the_instance_dir(tmp_path):
    values = Config.from_env({"OMEGAOPS_INSTANCE_DIR": str(tmp_path)})
    assert values["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'omegaops.db'}"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("OMEGAOPS_MAX_CONTENT_LENGTH", "lots", "must be an integer"),
        ("OMEGAOPS_SESSION_COOKIE_SECURE", "maybe", "must be a boolean"),
    ],
)
def test_bad_values_name_the_variable(name, value, message):
    with pytest.raises(ValueError, match=f"{name}.*{message}|{message}"):
        Config.from_env({name: value})


def test_production_refuses_to_start_without_a_secret_key(monkeypatch):
    monkeypatch.delenv("OMEGAOPS_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="OMEGAOPS_SECRET_KEY"):
        create_app(ProductionConfig)


def test_production_starts_with_a_secret_key(monkeypatch, tmp_path):
    monkeypatch.setenv("OMEGAOPS_SECRET_KEY", "s" * 32)
    monkeypatch.setenv("OMEGAOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'p.db'}")
    app = create_app(ProductionConfig)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SECRET_KEY"] == "s" * 32


def test_overrides_win_over_environment(monkeypatch):
    monkeypatch.setenv("OMEGAOPS_REDIS_URL", "redis://from-env:1/0")
    app = create_app(TestConfig, REDIS_URL="redis://override:1/0")
    assert app.config["REDIS_URL"] == "redis://override:1/0"


def test_config_class_is_chosen_by_omegaops_env():
    assert config_from_env({}) is DevelopmentConfig
    assert config_from_env({"OMEGAOPS_ENV": "production"}) is ProductionConfig
    with pytest.raises(ValueError, match="OMEGAOPS_ENV"):
        config_from_env({"OMEGAOPS_ENV": "staging"})
