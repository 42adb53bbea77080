"""index/README.md documents every module and every setting."""

from pathlib import Path

from index import describe_settings

README = Path(__file__).resolve().parents[2] / "index" / "README.md"


def test_every_module_is_listed():
    text = README.read_text()
    modules = sorted(p.name for p in README.parent.glob("*.py") if p.name != "__init__.py")
    assert [m for m in modules if f"`{m}`" not in text] == []


def test_every_setting_is_documented():
    text = README.read_text()
    assert [name for name, _, _ in describe_settings() if f"| `{name}` |" not in text] == []
