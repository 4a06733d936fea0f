"""Conventions that keep the code base honest."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import market
from market.errors import MarketError
from web import i18n

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "web" / "templates"
MIGRATIONS = ROOT / "migrations" / "versions"


def _import_all() -> None:
    for pkg_name in ("market", "listings", "auctions", "web"):
        pkg = importlib.import_module(pkg_name)
        for mod in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
            if mod.name.endswith(("__main__", "cli")):
                continue
            importlib.import_module(mod.name)


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def test_every_error_code_is_unique_and_snake_case() -> None:
    _import_all()
    seen: dict[str, type] = {}
    for cls in _subclasses(MarketError):
        code = cls.__dict__.get("code")
        if code is None:
            continue
        assert re.fullmatch(r"[a-z][a-z0-9_]*", code), cls
        assert code not in seen, f"{code} used by {seen.get(code)} and {cls}"
        seen[code] = cls
    assert market  # imported


def _text_outside_tags(source: str) -> str:
    source = re.sub(r"\{#.*?#\}", " ", source, flags=re.S)
    source = re.sub(r"\{\{.*?\}\}|\{%.*?%\}", " ", source, flags=re.S)
    source = re.sub(r"<(script|style)\b.*?</\1>", " ", source, flags=re.S)
    source = re.sub(r"<[^>]+>", " ", source)
    return source


def test_templates_hold_no_hard_coded_ui_text() -> None:
    for path in TEMPLATES.rglob("*.html"):
        leftover = _text_outside_tags(path.read_text())
        words = re.findall(r"[A-Za-z\u4e00-\u9fff]{2,}", leftover)
        assert not words, f"{path.relative_to(ROOT)} has untranslated text: {words[:5]}"


def test_every_template_message_has_a_chinese_translation() -> None:
    zh = i18n.catalogue("zh_CN")
    missing = []
    for path in TEMPLATES.rglob("*.html"):
        for msg in re.findall(r"""_\(\s*"((?:[^"\\]|\\.)*)"\s*[,)]""", path.read_text()):
            if msg not in zh:
                missing.append((path.name, msg))
    assert not missing, missing


def test_every_migration_has_a_downgrade() -> None:
    for path in MIGRATIONS.glob("*.py"):
        if path.name == "__init__.py":
            continue
        body = path.read_text()
        assert "def downgrade() -> None:" in body, path.name
        after = body.split("def downgrade() -> None:", 1)[1].strip()
        assert not after.startswith("pass"), f"{path.name} has an empty downgrade"
