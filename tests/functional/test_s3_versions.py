"""The local AWS's ListObjectVersions (trailwatch.local.s3_versions) against moto's own: the same listing for
prefixed requests, and only the keys under the prefix copied (moto copied the whole bucket, object bytes
included, for each call: 9 GB in the proof's load scenario)."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
from moto.s3.models import S3Backend
from trailwatch.local import moto_patches, s3_versions

TARGET = "moto.s3.models:S3Backend.list_object_versions"
IMPLEMENTATIONS = {
    "moto": lambda: moto_patches.original(TARGET),
    "local": lambda: s3_versions.list_object_versions,
}
BUCKET = "versions"


@pytest.fixture
def s3(aws: None, boto_session: Any) -> Any:
    client = boto_session.client("s3")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for key in ("a/1", "a/2", "a/2x", "a/b/3", "b/1", "c"):
        for body in (b"v1", b"v2"):
            client.put_object(Bucket=BUCKET, Key=key, Body=body)
    client.delete_object(Bucket=BUCKET, Key="a/1")  # a delete marker
    return client


def _listing(s3: Any, **kwargs: Any) -> Any:
    out = s3.list_object_versions(Bucket=BUCKET, **kwargs)
    versions = [(v["Key"], v["VersionId"], v["IsLatest"], v["Size"]) for v in out.get("Versions", [])]
    markers = [(m["Key"], m["VersionId"], m["IsLatest"]) for m in out.get("DeleteMarkers", [])]
    prefixes = [p["Prefix"] for p in out.get("CommonPrefixes", [])]
    return versions, markers, prefixes, out.get("NextKeyMarker"), out.get("IsTruncated")


REQUESTS: dict[str, dict[str, Any]] = {
    "one key, MaxKeys 2 (the processor's tamper check)": {"Prefix": "a/2", "MaxKeys": 2},
    "a folder": {"Prefix": "a/"},
    "a folder with a delimiter": {"Prefix": "a/", "Delimiter": "/"},
    "a deleted key": {"Prefix": "a/1"},
    "truncated": {"Prefix": "a/", "MaxKeys": 3},
    "nothing under it": {"Prefix": "z"},
    "no prefix": {},
    "a key marker": {"Prefix": "a/", "KeyMarker": "a/2"},
}


@pytest.mark.parametrize("request_name", list(REQUESTS))
def test_same_listing_as_motos_own(s3: Any, monkeypatch: pytest.MonkeyPatch, request_name: str) -> None:
    listings = {}
    for name, implementation in IMPLEMENTATIONS.items():
        monkeypatch.setattr(S3Backend, "list_object_versions", implementation())
        listings[name] = _listing(s3, **REQUESTS[request_name])
    assert listings["local"] == listings["moto"]


@pytest.mark.parametrize(("implementation", "keys_copied"), [("moto", 12), ("local", 2)])
def test_only_the_keys_under_the_prefix_are_copied(
    s3: Any, monkeypatch: pytest.MonkeyPatch, implementation: str, keys_copied: int
) -> None:
    monkeypatch.setattr(S3Backend, "list_object_versions", IMPLEMENTATIONS[implementation]())
    copied: Counter[str] = Counter()
    deepcopy = copy.deepcopy

    def counting(value: Any, memo: Any = None) -> Any:
        if memo is None and isinstance(value, list):
            copied["FakeKey"] += sum(type(v).__name__ == "FakeKey" for v in value)
        return deepcopy(value, memo)

    monkeypatch.setattr(copy, "deepcopy", counting)
    _listing(s3, Prefix="a/2x", MaxKeys=2)
    assert copied["FakeKey"] == keys_copied
