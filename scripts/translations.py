"""Regenerate web/locale/*/LC_MESSAGES/messages.po from the sources in scripts/i18n/.

Each module in scripts/i18n/ defines ``ZH`` (English source -> Chinese) and may define
``EN`` (English text for symbolic keys such as ``role.*`` and ``error.*``). Templates only
call ``_("English source")``; run ``python scripts/translations.py`` after adding text.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent / "web" / "locale"


def sources() -> tuple[dict[str, str], dict[str, str]]:
    zh: dict[str, str] = {}
    en: dict[str, str] = {}
    for path in sorted((HERE / "i18n").glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"i18n_{path.stem}", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for target, name in ((zh, "ZH"), (en, "EN")):
            for key, value in getattr(module, name, {}).items():
                if key in target and target[key] != value:
                    raise SystemExit(f"{path.name}: {key!r} translated differently elsewhere")
                target[key] = value
    return zh, en


def write(locale: str, messages: dict[str, str]) -> None:
    catalog = Catalog(locale=locale, project="ip-disposal-market", charset="utf-8")
    for msgid, msgstr in messages.items():
        catalog.add(msgid, msgstr)
    path = ROOT / locale / "LC_MESSAGES" / "messages.po"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, catalog, width=0, omit_header=False, sort_output=True)


if __name__ == "__main__":
    zh, en = sources()
    write("zh_CN", zh)
    write("en", en)
