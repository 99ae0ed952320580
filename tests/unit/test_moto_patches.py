"""The table of moto replacements: it installs all or nothing, and refuses another moto or changed code."""

from __future__ import annotations

import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import moto
import pytest
from trailwatch.local import moto_patches
from trailwatch.local.moto_patches import PATCHES, PINNED_MOTO, MotoMismatch, Patch, install, source_sha256

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """A module standing in for moto's, with a function `f` and a class `C` with a method `m`."""
    source = textwrap.dedent(
        """
        def f():
            return "original f"


        class C:
            def m(self):
                return "original m"
        """
    )
    (tmp_path / "fake_moto_module.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import fake_moto_module

    yield fake_moto_module
    sys.modules.pop("fake_moto_module", None)


def replaced_f() -> str:
    return "replaced f"


def replaced_m(self: object) -> str:
    return "replaced m"


def patches(module: ModuleType, m_hash: str | None = None) -> tuple[Patch, ...]:
    return (
        Patch("fake_moto_module:f", replaced_f, source_sha256(module.f)),
        Patch("fake_moto_module:C.m", replaced_m, m_hash or source_sha256(module.C.m)),
    )


def test_pin_is_pyprojects() -> None:
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    pins = [d.split("==", 1)[1] for d in dependencies if d.startswith("moto[") or d.startswith("moto==")]
    assert pins == [PINNED_MOTO]


def test_table_matches_the_installed_moto() -> None:
    """Each target is moto's pinned code (by hash) or already our replacement: install() would start."""
    moto_patches._check(PATCHES)  # raises MotoMismatch otherwise
    assert len({p.target for p in PATCHES}) == len(PATCHES)


def test_replacements_are_module_level_functions() -> None:
    """Each replacement is a function (or a property's getter) its module names, not a closure."""
    for patch in PATCHES:
        function = patch.replacement.fget if isinstance(patch.replacement, property) else patch.replacement
        module = sys.modules[function.__module__]
        assert getattr(module, function.__qualname__) is function, patch.target


def test_install_replaces_and_is_idempotent(target: ModuleType) -> None:
    table = patches(target)
    install(table)
    install(table)
    assert (target.f(), target.C().m()) == ("replaced f", "replaced m")
    assert moto_patches.original("fake_moto_module:C.m")(target.C()) == "original m"


def test_original_is_motos_before_and_after_install() -> None:
    from moto.sqs.models import Queue

    target = "moto.sqs.models:Queue.add_message"
    before = moto_patches.original(target)
    install()
    assert moto_patches.original(target) is before
    assert Queue.add_message is not before
    assert source_sha256(before) == next(p.sha256 for p in PATCHES if p.target == target)


def test_changed_source_is_refused_and_nothing_is_replaced(target: ModuleType) -> None:
    with pytest.raises(MotoMismatch, match=r"fake_moto_module:C\.m is not the code") as refused:
        install(patches(target, m_hash="0" * 64))
    assert "\n" not in str(refused.value)
    assert (target.f(), target.C().m()) == ("original f", "original m")


def test_other_moto_version_is_refused(target: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(MotoMismatch, match=rf"needs moto {PINNED_MOTO} .*found 5\.3\.0") as refused:
        install(patches(target))
    assert "\n" not in str(refused.value)
    assert target.f() == "original f"


def test_local_up_refuses_another_moto_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from trailwatch.main import cli

    monkeypatch.setattr(moto, "__version__", "5.3.0")
    result = CliRunner().invoke(cli, ["local", "up", "--port", "0", "--no-cloudtrail", "--no-lambda-runtime"])
    assert result.exit_code == 2, result.output
    assert f"needs moto {PINNED_MOTO} (pinned in pyproject.toml), found 5.3.0" in result.output
    assert "Traceback" not in result.output
