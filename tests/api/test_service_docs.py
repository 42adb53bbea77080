"""api/README.md documents every module, route module and setting of the service."""

from pathlib import Path

from api.settings import describe_settings

README = Path(__file__).resolve().parents[2] / "api" / "README.md"


def test_every_module_is_listed():
    text = README.read_text()
    folder = README.parent
    modules = sorted(
        str(p.relative_to(folder))
        for p in [*folder.glob("*.py"), *folder.glob("routes/*.py")]
        if p.name not in ("__init__.py", "__main__.py")
    )
    assert [m for m in modules if f"`{m}`" not in text] == []


def test_every_setting_is_documented():
    text = README.read_text()
    assert [name for name, _, _ in describe_settings() if f"| `{name}` |" not in text] == []
