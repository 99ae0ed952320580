"""The monitored-events config in S3, cached across invocations and re-checked with a conditional GET.

- Checked at most once per ``ttl`` seconds; the check sends ``If-None-Match: <etag>``, so an unchanged
  config costs one 304 and no parsing.
- Missing object: the bundled default, with a warning (every check, so it stays visible in the logs).
- Invalid object: keep the last good matcher (the bundled default on a cold start), log the error and call
  ``on_invalid(error)`` once per bad ETag (``.etag`` is that ETag during the call). If it raises or returns
  False ("not reported yet", e.g. another container is sending the alert), it is called again at the next
  check. Deduplication across containers is the callback's job (reports.report_invalid_config).
- Every new version put in force (a new valid ETag, also after a direct S3 put; the bundled default when the
  object is missing, named ``default:<digest id>``) is passed to ``on_loaded(matcher, version)`` once per
  container; if it raises or returns False it is called again at the next check. Deduplication across
  containers and the rule diff are the callback's job (reports.report_config_loaded). An invalid version
  is not "loaded": on_invalid reports it.
- Any other error reading S3: keep the last good matcher; on a cold start there is none, so it raises (the
  message fails and is retried rather than matched against a config the owner did not choose).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from .config import ConfigError
from .config_diff import config_digest, digest_id
from .config_load import load_default_config, parse_config
from .patterns import Matcher, compile_config

log = logging.getLogger(__name__)

_NOT_MODIFIED = {"304", "NotModified", "Not Modified"}
_MISSING = {"NoSuchKey", "404", "NotFound"}

_default_matcher: Matcher | None = None
_default_version: str | None = None


def default_matcher() -> Matcher:
    """The bundled default config, compiled once per container."""
    global _default_matcher
    if _default_matcher is None:
        _default_matcher = compile_config(load_default_config())
    return _default_matcher


def default_version() -> str:
    """The version name of the bundled default: it has no ETag, so it is named by its rules' digest (a
    deployment that changes the bundled rules is a new version)."""
    global _default_version
    if _default_version is None:
        _default_version = "default:" + digest_id(config_digest(default_matcher().rules))
    return _default_version


class ConfigCache:
    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        *,
        ttl: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_invalid: Callable[[ConfigError], bool | None] | None = None,
        expected_owner: str | None = None,
        on_loaded: Callable[[Matcher, str], bool | None] | None = None,
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.key = key
        self.ttl = ttl
        self.clock = clock
        self.on_invalid = on_invalid
        self.expected_owner = expected_owner  # ExpectedBucketOwner: S3 refuses a bucket of another account
        self.on_loaded = on_loaded
        self._version: str | None = None  # the valid version in force (None: none loaded, or only invalid)
        self._announced: str | None = None  # the version on_loaded last accepted
        self._matcher: Matcher | None = None
        self._etag: str | None = None  # ETag of the object last read (good or bad)
        self._checked_at: float | None = None
        self._reported: set[str] = set()  # bad ETags already reported through on_invalid
        self.source = "none"  # "s3", "default" or "default (invalid s3 config)": for logs

    @property
    def etag(self) -> str | None:
        """ETag of the config object last read, good or bad (None: the bundled default is in use)."""
        return self._etag

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def matcher(self) -> Matcher:
        now = self.clock()
        if self._matcher is not None and self._checked_at is not None and now - self._checked_at < self.ttl:
            return self._matcher
        self._refresh()
        self._checked_at = now
        self._announce()
        assert self._matcher is not None
        return self._matcher

    def _announce(self) -> None:
        if self.on_loaded is None or self._version is None or self._version == self._announced:
            return
        assert self._matcher is not None
        try:
            done = self.on_loaded(self._matcher, self._version)
        except Exception:
            log.exception(
                "config %s: announcing version %s failed; retry at next check", self.location, self._version
            )
            return
        if done is not False:
            self._announced = self._version

    def _refresh(self) -> None:
        kwargs = {"Bucket": self.bucket, "Key": self.key}
        if self.expected_owner:
            kwargs["ExpectedBucketOwner"] = self.expected_owner
        if self._etag and self._matcher is not None:
            kwargs["IfNoneMatch"] = self._etag
        try:
            response = self.s3.get_object(**kwargs)
            data = response["Body"].read()
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in _NOT_MODIFIED:
                return
            if code in _MISSING:
                log.warning("config %s not found: using the bundled default config", self.location)
                self._use(default_matcher(), etag=None, source="default")
                self._version = default_version()
                return
            if self._matcher is None:
                raise
            log.error("config %s: cannot read (%s); keeping the %s config", self.location, err, self.source)
            return
        etag = response.get("ETag")
        try:
            matcher = compile_config(parse_config(data, source=self.location))
        except ConfigError as err:
            self._invalid(err, etag)
            return
        log.info("config %s loaded (ETag %s, %d rules)", self.location, etag, len(matcher.rules))
        self._use(matcher, etag=etag, source="s3")
        self._version = etag or "s3:" + digest_id(config_digest(matcher.rules))

    def _use(self, matcher: Matcher, *, etag: str | None, source: str) -> None:
        self._matcher = matcher
        self._etag = etag
        self.source = source

    def _invalid(self, err: ConfigError, etag: str | None) -> None:
        if self._matcher is None:
            self._use(default_matcher(), etag=etag, source="default (invalid s3 config)")
        else:
            self._etag = etag
        log.error(
            "config %s (ETag %s) invalid; keeping the %s config:\n%s", self.location, etag, self.source, err
        )
        if self.on_invalid is None or etag in self._reported:
            return
        try:
            done = self.on_invalid(err)
        except Exception:
            log.exception("config %s: reporting it as invalid failed; retry at next check", self.location)
            done = False
        if done is False:
            # Force a full GET at the next check so the report is retried.
            self._etag = None
            return
        if etag is not None:
            self._reported.add(etag)
