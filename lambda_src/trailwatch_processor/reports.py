"""Operational alerts sent once overall, whatever the number of containers: a poison log file, an invalid
config version, and each newly loaded config version with its rule differences. Each claims a marker in the
events table (markers.claim_marker) and only the claimant publishes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from . import alerts, config_diff, markers, store
from .deps import Deps, object_version
from .notifications import ObjectRef

log = logging.getLogger(__name__)


def report_poison_file(ref: ObjectRef, reason: str, handled: int, deps: Deps) -> bool:
    """One operational alert naming a log object that cannot be processed, once overall (the marker
    claim of report_invalid_config). True when sent (now or before)."""
    version = object_version(ref)
    source = f"s3://{ref.bucket}/{ref.key}"
    marker_id = markers.poison_marker_id(ref.bucket, ref.key, version)
    outcome, token, now = deps.claim_marker(
        marker_id,
        {
            "object_bucket": ref.bucket,
            "object_key": ref.key,
            "object_version": version or "",
            "error": reason,
        },
    )
    if not outcome.claimed:
        return outcome.status == store.SENT
    message = alerts.operational_alert(
        "Log file cannot be processed (poison)",
        f"{source} (version {version or 'unknown'}): {reason}. The first {handled} matched record(s) are "
        "stored and alerted; the rest is not. Process it with `trailwatch scan` or redrive it from the "
        "dead-letter queue once the cause is fixed.",
        source=source,
    )
    deps.publish_claimed(marker_id, token, now, message)
    log.error("declared poison: %s: %s", source, reason, extra={"data": {"object": source, "reason": reason}})
    return True


def report_invalid_config(error: Exception, etag: str | None, deps: Deps) -> bool:
    """Send the operational alert for one invalid config version once overall, whatever the number of
    containers that read it: only the invocation whose marker claim succeeds (markers.claim_marker) publishes.

    True: the alert is sent (now, by us, or earlier by another container). False: another live invocation
    holds the claim; ask again at the next check (it may die before sending). A failed publish releases the
    claim, so that this or another container sends it at its next check, and raises.
    """
    settings = deps.settings
    source = f"s3://{settings.config_bucket}/{settings.config_key}"
    marker_id = markers.config_invalid_marker_id(settings.config_bucket, settings.config_key, etag)
    outcome, token, now = deps.claim_marker(
        marker_id,
        {"config_source": source, "config_etag": etag or "", "error": str(error)},
    )
    if not outcome.claimed:
        log.info("config %s (ETag %s): operational alert is %s", source, etag, outcome.status or "gone")
        return outcome.status == store.SENT
    message = alerts.operational_alert(
        "Invalid trailwatch config; the last good config stays in use",
        f"ETag {etag}\n{error}",
        source=source,
    )
    if not deps.publish_claimed(marker_id, token, now, message):
        log.warning(
            "config %s: marker %s taken over before it was marked sent (possible duplicate)",
            source,
            marker_id,
        )
    return True


def report_config_loaded(rules: Sequence[Any], version: str, deps: Deps) -> bool:
    """Announce a newly loaded config version once overall, with its rule differences from the version
    announced before it (the digest kept in the table's config-state item).

    ``version`` is the object's ETag, or ``default:<digest id>`` for the bundled default. A version equal to
    the stored state is already announced: nothing to do. Otherwise the marker of the transition
    (state counter, version) is claimed as in report_invalid_config: one container publishes, then the
    state moves on (conditionally, so two containers cannot both advance it). Severity: ``high`` when rules
    are removed or weakened (config_diff says what counts), ``info`` for the first version ever announced,
    else ``low``. Returns True when announced (by anyone), False to be asked again at the next check.
    """
    settings, ddb, table = deps.settings, deps.dynamodb, deps.settings.events_table
    source = f"s3://{settings.config_bucket}/{settings.config_key}"
    digest = config_diff.config_digest(rules)
    state_id = markers.config_state_id(settings.config_bucket, settings.config_key)
    state = markers.get_config_state(ddb, table, state_id)
    if state is not None and state.version == version:
        return True
    previous_seq = state.seq if state is not None else 0
    marker_id = markers.config_loaded_marker_id(
        settings.config_bucket, settings.config_key, previous_seq, version
    )
    outcome, token, now = deps.claim_marker(
        marker_id,
        {
            "config_source": source,
            "config_etag": version,
            "previous_etag": state.version if state is not None else "",
        },
    )
    if outcome.claimed:
        message = _config_loaded_alert(state, version, digest, source)
        if not deps.publish_claimed(marker_id, token, now, message):
            log.warning("config %s: marker %s taken over before it was marked sent", source, marker_id)
    elif outcome.status != store.SENT:
        log.info("config %s (version %s): announcement is %s", source, version, outcome.status or "gone")
        return False
    # Sent (by us or by a container that died before moving the state on): record the new version.
    markers.put_config_state(
        ddb, table, state_id, version=version, digest=digest, seq=previous_seq + 1, now=deps.now()
    )
    return True


def _config_loaded_alert(
    state: markers.ConfigState | None, version: str, digest: dict[str, str], source: str
) -> alerts.SnsMessage:
    if state is None:
        detail = f"Version {version}: {len(digest)} rule(s) in force.\n" + "\n".join(
            f"  {rule_id}" for rule_id in list(digest)[:50]
        )
        return alerts.operational_alert(
            f"trailwatch config in force: {len(digest)} rule(s)", detail, source=source, severity="info"
        )
    diff = config_diff.diff_digests(state.digest, digest)
    summary = (
        f"Version {version} replaces {state.version}: {len(digest)} rule(s) in force "
        f"(was {len(state.digest)}); {len(diff.added)} added, {len(diff.removed)} removed, "
        f"{len(diff.changed)} changed."
    )
    lines = diff.lines() or ["(same rules: only the file changed)"]
    if diff.weakening:
        title = (
            f"trailwatch config changed: {len(diff.removed)} rule(s) removed, {len(diff.weakened)} weakened"
        )
        severity = "high"
    else:
        title = "trailwatch config changed"
        severity = "low"
    return alerts.operational_alert(
        title, summary + "\n" + "\n".join(lines), source=source, severity=severity
    )
