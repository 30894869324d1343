"""Discover every environment variable the Python services read, without starting them.

Two sources, both found by walking the source trees so new settings are picked up unaided:
- each pydantic-settings `BaseSettings` subclass (env_prefix + field name, or the field's
  validation alias), imported only from modules that mention `BaseSettings` (no TensorFlow import);
- literal names read through `os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)`, or held
  in module constants named `*_ENV`.
"""

from __future__ import annotations

import ast
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

REPO_ROOT = Path(__file__).resolve().parents[2]

# import name -> source folder; which compose services run the code of each package.
PACKAGES: dict[str, Path] = {
    "mushroom_common": REPO_ROOT / "packages/mushroom-common/src/mushroom_common",
    "mushroom_collector": REPO_ROOT / "data-collector/src/mushroom_collector",
    "mushroom_training": REPO_ROOT / "model-training/src/mushroom_training",
    "mushroom_api": REPO_ROOT / "api-service/src/mushroom_api",
    "mushroom_pipeline": REPO_ROOT / "pipeline/src/mushroom_pipeline",
}
SERVICE_PACKAGES: dict[str, tuple[str, ...]] = {
    "api": ("mushroom_common", "mushroom_api"),
    "collector": ("mushroom_common", "mushroom_collector"),
    "trainer": ("mushroom_common", "mushroom_training"),
    "pipeline": ("mushroom_common", "mushroom_collector", "mushroom_training", "mushroom_pipeline"),
}
# Read by libraries or platforms, not settings a person chooses: documented, never required.
PLATFORM_VARIABLES = frozenset({"TF_CONFIG", "HOME", "PATH", "JOB_COMPLETION_INDEX"})
# A database URL carries its password.
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "API_KEY", "DATABASE_URL")


@dataclass(frozen=True)
class EnvVar:
    """One environment variable: its accepted names (aliases) and the package that reads it."""

    names: tuple[str, ...]
    package: str
    source: str = field(compare=False)
    default: str | None = field(default=None, compare=False)
    description: str = field(default="", compare=False)
    from_settings: bool = field(default=False, compare=False)

    @property
    def name(self) -> str:
        """The preferred name (the first alias)."""
        return self.names[0]

    @property
    def unset_by_default(self) -> bool:
        """A settings field whose default is None: leaving it unset is the only way to get it."""
        return self.from_settings and self.default is None

    @property
    def is_secret(self) -> bool:
        """Whether the value belongs in a Secret rather than a ConfigMap."""
        return any(word in self.name for word in SECRET_WORDS)


def _module_name(package: str, root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _default_text(info: FieldInfo) -> str | None:
    """The field's default as an environment value; None when the default is None."""
    if info.default_factory is not None:
        made = info.get_default(call_default_factory=True, validated_data={})
        return json.dumps(made) if isinstance(made, list | dict) else "(computed)"
    default = info.get_default()
    if default is None or default is PydanticUndefined:
        return None
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, list | dict):
        return json.dumps(default)
    # Paths under the home folder differ per user and container: show them with `~`.
    return str(default).replace(str(Path.home()), "~")


def _settings_variables(package: str, module_name: str) -> list[EnvVar]:
    module = importlib.import_module(module_name)
    found = []
    for value in vars(module).values():
        if not (
            isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value is not BaseSettings
            and value.__module__ == module_name
        ):
            continue
        prefix = str(value.model_config.get("env_prefix", ""))
        for field_name, info in value.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices):
                names = tuple(c for c in alias.choices if isinstance(c, str))
            elif isinstance(alias, str):
                names = (alias,)
            elif info.alias:
                names = (info.alias,)
            else:
                names = (f"{prefix}{field_name}",)
            names = tuple(n.upper() for n in names)
            found.append(
                EnvVar(
                    names,
                    package,
                    f"{module_name}.{value.__name__}.{field_name}",
                    default=_default_text(info),
                    description=info.description or "",
                    from_settings=True,
                )
            )
    return found


def _literal_reads(package: str, module_name: str, tree: ast.AST) -> list[EnvVar]:
    found = []
    for node in ast.walk(tree):
        name: str | None = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in {"os.environ.get", "os.getenv", "environ.get", "getenv"}:
                name = node.args[0].value if isinstance(node.args[0].value, str) else None
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in {
            "os.environ",
            "environ",
        }:
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                name = node.slice.value
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(t.endswith("_ENV") for t in targets) and isinstance(node.value.value, str):
                name = node.value.value
        if name and name.isupper():
            found.append(EnvVar((name,), package, module_name))
    return found


def discover() -> list[EnvVar]:
    """Every variable read by the service packages, one entry per (names, package), sorted."""
    found: dict[tuple[tuple[str, ...], str], EnvVar] = {}
    for package, root in PACKAGES.items():
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            module_name = _module_name(package, root, path)
            variables = _literal_reads(package, module_name, ast.parse(text))
            if "BaseSettings" in text or "SharedSettings" in text:
                variables += _settings_variables(package, module_name)
            for var in variables:
                found.setdefault((var.names, var.package), var)
    return sorted(found.values(), key=lambda v: (v.package, v.name))


def for_service(variables: list[EnvVar], service: str) -> list[EnvVar]:
    """The variables a compose service reads (its packages' ones), platform ones left out."""
    packages = SERVICE_PACKAGES[service]
    return [v for v in variables if v.package in packages and v.name not in PLATFORM_VARIABLES]
