"""Settings read from the environment (prefix CONTINUO_) or a .env file."""

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTINUO_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=lambda: platformdirs.user_data_path("continuo"))  # models, caches, databases
    max_file_mb: float = 50.0  # largest text file accepted for training or evaluation

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def checkpoints_dir(self) -> Path:
        return self.home / "checkpoints"


@lru_cache
def get_settings() -> Settings:
    return Settings()
