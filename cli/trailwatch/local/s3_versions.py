"""ListObjectVersions with a prefix at a cost that grows with the keys under the prefix, not the bucket.

moto 5.2.1's ``S3Backend.list_object_versions`` deep-copies every version of every key of the bucket --
object bytes included -- before it filters by prefix. The processor lists the versions of each log file it
reads (tamper.check_overwrite: ``Prefix=<key>, MaxKeys=2``), so each file copied the whole trail bucket: in
the proof's load (500 files) the local AWS grew to 9 GB within the one scenario, and the whole proof was
OOM-killed at ~23 GB. The replacement hands moto's own function a view of the bucket holding only the keys
under the prefix; everything else (sorting, ``is_latest``, delimiters, MaxKeys, markers) is moto's. Pagination
(a key marker) or no prefix: moto's function as it is, since its marker handling looks at keys outside the
prefix. Installed through moto_patches' table.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from moto.s3.models import S3Backend

_moto_list_object_versions = S3Backend.list_object_versions  # the original, called by the replacement


def list_object_versions(
    self: S3Backend,
    bucket_name: str,
    delimiter: str | None = None,
    key_marker: str | None = None,
    max_keys: int | None = 1000,
    prefix: str = "",
    version_id_marker: str | None = None,
) -> Any:
    """Replaces moto.s3.models:S3Backend.list_object_versions (see the module docstring)."""
    args = (bucket_name, delimiter, key_marker, max_keys, prefix, version_id_marker)
    if key_marker is not None or not prefix:
        return _moto_list_object_versions(self, *args)
    bucket = self.get_bucket(bucket_name)

    def under_prefix() -> Any:
        return ((name, versions) for name, versions in bucket.keys.iterlists() if name.startswith(prefix))

    view = SimpleNamespace(keys=SimpleNamespace(iterlists=under_prefix))
    return _moto_list_object_versions(SimpleNamespace(get_bucket=lambda name: view), *args)  # type: ignore[arg-type]
