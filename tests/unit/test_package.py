"""The Lambda package: same source, same bytes; only modules and the bundled config; hash-named key."""

from __future__ import annotations

import ast
import hashlib
import shutil
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import pytest
import trailwatch_processor
from trailwatch import package


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A copy of a processor package with a symlinked config and a __pycache__ to ignore."""
    root = tmp_path / "src" / "trailwatch_processor"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text('"""pkg"""\n')
    (root / "handler.py").write_text("def handler(event, context):\n    return {}\n")
    (root / "sub" / "helpers.py").write_text("X = 1\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\x00junk")
    (root / "notes.txt").write_text("not shipped")
    (tmp_path / "events.json").write_text('{"monitored_events": ["CreateUser"]}')
    (root / "default_events.json").symlink_to(tmp_path / "events.json")
    return root


def test_same_source_same_bytes(source: Path, tmp_path: Path):
    first = package.build_package(source)
    copy = tmp_path / "copy" / "trailwatch_processor"
    shutil.copytree(source, copy, symlinks=False)
    for path in copy.rglob("*"):  # other timestamps, other modes
        path.touch()
        if path.is_file():
            path.chmod(0o600)
    second = package.build_package(copy)
    assert first.data == second.data
    assert first.sha256 == second.sha256 == hashlib.sha256(first.data).hexdigest()
    assert package.build_package(source).data == first.data


def test_contents_order_times_modes(source: Path):
    built = package.build_package(source)
    with zipfile.ZipFile(BytesIO(built.data)) as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names == [
            "trailwatch_processor/__init__.py",
            "trailwatch_processor/default_events.json",
            "trailwatch_processor/handler.py",
            "trailwatch_processor/sub/helpers.py",
        ]
        assert (
            archive.read("trailwatch_processor/default_events.json")
            == b'{"monitored_events": ["CreateUser"]}'
        )
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_any_change_changes_hash_and_key(source: Path):
    before = package.build_package(source)
    (source / "handler.py").write_text("def handler(event, context):\n    return {'changed': 1}\n")
    after = package.build_package(source)
    assert before.sha256 != after.sha256
    assert before.key != after.key
    assert after.key == f"trailwatch/lambda/trailwatch-processor-{after.sha256[:16]}.zip"


def test_missing_config_fails_loudly(source: Path):
    (source / "default_events.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"default_events\.json"):
        package.build_package(source)


def test_installed_package_builds_with_its_handler():
    built = package.build_package()
    assert "trailwatch_processor/handler.py" in built.files
    assert "trailwatch_processor/default_events.json" in built.files
    assert not any("__pycache__" in name for name in built.files)


def test_artifacts_bucket_name_and_tls_policy():
    assert (
        package.artifacts_bucket_name("123456789012", "eu-west-1")
        == "trailwatch-artifacts-123456789012-eu-west-1"
    )
    policy = package.tls_only_policy("b", "aws-cn")
    assert '"aws:SecureTransport": "false"' in policy and "arn:aws-cn:s3:::b/*" in policy


def test_processor_imports_only_the_standard_library_and_boto3() -> None:
    """The Lambda ships no dependencies: every import of the processor is the standard library, the
    runtime's boto3/botocore, or the package itself."""
    allowed = set(sys.stdlib_module_names) | {"boto3", "botocore"}
    found: dict[str, str] = {}
    for path in sorted(Path(trailwatch_processor.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found[name.split(".")[0]] = path.name
    assert found, "no imports found: the walk looked in the wrong place"
    assert {name: where for name, where in found.items() if name not in allowed} == {}
