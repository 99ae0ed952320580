"""`trailwatch suppress add|list|remove`: edit the suppressions of the config in force.

A suppression (``noise_config.py``) hides matching events from alerting until it expires; the events are
still stored, marked with the suppression's id. These commands read the config in force (the bucket's, or
the bundled default when there is none), change only its ``suppressions`` list, and upload the result
through ``configcmd.upload_bytes``: the same validation, rule tests, diff and question as `upload-config`
(adding a suppression weakens alerting, so it asks unless ``--yes``).

Silence a noisy rule for one principal in one command::

    trailwatch suppress add --rule cis-4.1-unauthorized-api-calls \\
        --principal arn:aws:iam::123456789012:role/scanner \\
        --reason "vulnerability scanner, denied by design" --owner secops@example.com --expires 30d
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from trailwatch.errors import UsageError
from trailwatch.session import Aws
from trailwatch.ui import UI

EXPIRING_SOON_DAYS = 14  # `verify` and `suppress list` warn this long before an expiry
_DAYS_RE = re.compile(r"(\d{1,4})d")
_ROLE_ARN_RE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/.+")


# -- the config in force ----------------------------------------------------------------------------
@dataclass
class InForce:
    raw: dict[str, Any]  # the JSON document, as written (key order and every field kept)
    label: str  # where it comes from, for messages


def config_in_force(aws: Aws, outputs: dict[str, str]) -> InForce:
    """The bucket's config, or the bundled default when the bucket has none. An invalid config in the
    bucket is refused: the processor keeps its last good one, which cannot be read back from here."""
    from trailwatch import configcmd, resources

    bucket, key = configcmd.config_location(outputs)
    remote = configcmd.fetch_remote(aws, bucket, key)
    if not remote.exists:
        path = resources.default_config_path()
        return InForce(_as_object(json.loads(path.read_bytes())), f"{path.name} (bundled default in force)")
    if remote.error:
        raise UsageError(
            f"The config in s3://{bucket}/{key} is invalid: {remote.error.splitlines()[0]}",
            hint="Fix it with `trailwatch upload-config FILE` first; suppressions edit a valid config.",
        )
    assert remote.data is not None
    return InForce(_as_object(json.loads(remote.data)), f"s3://{bucket}/{key}")


def _as_object(doc: Any) -> dict[str, Any]:
    """A bare list of event names is the same config as ``{"monitored_events": [...]}``."""
    return {"monitored_events": doc} if isinstance(doc, list) else dict(doc)


def upload_edited(
    aws: Aws, ui: UI, edited: dict[str, Any], *, label: str, outputs: dict[str, str], yes: bool
) -> bool:
    from trailwatch import configcmd

    data = (json.dumps(edited, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    return configcmd.upload_bytes(aws, ui, data, label=label, base=Path.cwd(), outputs=outputs, yes=yes)


# -- building a suppression ------------------------------------------------------------------------
def parse_expires(text: str, today: date) -> str:
    """``30d`` (that many days from today, UTC) or a date/ISO time as noise_config reads it; it must be in
    the future (an expired suppression would be added and ignored)."""
    from trailwatch_processor.noise_config import parse_expiry

    match = _DAYS_RE.fullmatch(text.strip())
    if match:
        days = int(match.group(1))
        if days < 1:
            raise UsageError("--expires 0d: a suppression must last at least one day.")
        return (today + timedelta(days=days)).isoformat()
    moment = parse_expiry(text.strip())
    if moment is None:
        raise UsageError(
            f"--expires {text!r}: expected a date (2027-03-31), an ISO time in UTC (2027-03-31T12:00:00Z) "
            "or a number of days (30d)."
        )
    if moment <= datetime(today.year, today.month, today.day, tzinfo=UTC):
        raise UsageError(f"--expires {text}: that is not in the future.")
    return text.strip()


def build_pattern(
    pattern_json: str | None,
    *,
    principals: tuple[str, ...] = (),
    event_names: tuple[str, ...] = (),
    source_ips: tuple[str, ...] = (),
    accounts: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The EventBridge pattern: ``--pattern`` JSON and/or the field options (each a field of the record;
    a source IP with ``/`` is a CIDR; an IAM role's ARN matches its sessions through
    ``userIdentity.sessionContext.sessionIssuer.arn``). A field given both ways is refused, not guessed."""
    pattern: dict[str, Any] = {}
    if pattern_json is not None:
        try:
            pattern = json.loads(pattern_json)
        except ValueError as exc:
            raise UsageError(f"--pattern is not JSON: {exc}") from None
        if not isinstance(pattern, dict):
            raise UsageError("--pattern must be a JSON object (an EventBridge event pattern).")
    roles = [p for p in principals if _ROLE_ARN_RE.fullmatch(p)]
    others = [p for p in principals if p not in roles]
    if roles:
        # A role acts through sessions: CloudTrail's userIdentity.arn is the session's
        # (arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION), the role's own ARN is the session issuer's.
        if "$or" in pattern or "userIdentity" in pattern:
            raise UsageError("A role --principal cannot be combined with userIdentity or $or in --pattern.")
        by_role = {"userIdentity": {"sessionContext": {"sessionIssuer": {"arn": roles}}}}
        pattern["$or"] = [by_role, {"userIdentity": {"arn": others}}] if others else [by_role]
        if not others:
            pattern.update(pattern.pop("$or")[0])
    fields: list[tuple[tuple[str, ...], list[Any]]] = [
        (("userIdentity", "arn"), [] if roles else others),
        (("eventName",), list(event_names)),
        (("sourceIPAddress",), [{"cidr": ip} if "/" in ip else ip for ip in source_ips]),
        (("recipientAccountId",), list(accounts)),
    ]
    for path, values in fields:
        if not values:
            continue
        node = pattern
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UsageError(f"--pattern sets {part} to a list; it cannot be combined with the options.")
        if path[-1] in node:
            raise UsageError(f"{'.'.join(path)} is given in --pattern and as an option: give it once.")
        node[path[-1]] = values
    if not pattern:
        raise UsageError(
            "Nothing to match: give --pattern JSON or at least one of --principal, --event-name, "
            "--source-ip, --account.",
            hint="A suppression hides only the events it matches; --rule limits it to some rules.",
        )
    return pattern


def suppression_id(pattern: dict[str, Any], rules: tuple[str, ...]) -> str:
    """A stable id from what is suppressed: the same suppression added twice is a duplicate."""
    canonical = json.dumps([pattern, sorted(rules)], sort_keys=True, separators=(",", ":"))
    scope = rules[0] if len(rules) == 1 else "rules" if rules else "all"
    return f"{scope}-{hashlib.sha256(canonical.encode()).hexdigest()[:8]}"


# -- listing -----------------------------------------------------------------------------------------
def days_left(expires_at: datetime, now: datetime) -> float:
    return (expires_at - now).total_seconds() / 86400.0


def describe_left(expires_at: datetime, now: datetime) -> str:
    left = days_left(expires_at, now)
    if left <= 0:
        return "expired"
    return "<1" if left < 1 else str(int(left))


def list_rows(config: Any, now: datetime) -> list[list[str]]:
    return [
        [
            s.id,
            ", ".join(s.rules) if s.rules is not None else "all rules",
            s.owner,
            s.expires,
            describe_left(s.expires_at, now),
            s.reason,
        ]
        for s in config.suppressions
    ]


LIST_HEADERS = ["id", "rules", "owner", "expires", "days left", "reason"]


def expiry_warnings(config: Any, now: datetime, soon_days: int = EXPIRING_SOON_DAYS) -> list[str]:
    """One line per suppression that has expired (still in the config, no longer applied) or expires
    within ``soon_days`` days: what `verify` warns about."""
    out: list[str] = []
    for s in getattr(config, "suppressions", ()):
        left = days_left(s.expires_at, now)
        if left <= 0:
            out.append(f"{s.id} expired {s.expires} (no longer applied; trailwatch suppress remove {s.id})")
        elif left <= soon_days:
            out.append(
                f"{s.id} expires {s.expires} (in {describe_left(s.expires_at, now)} day(s); owner {s.owner})"
            )
    return out


# -- commands ----------------------------------------------------------------------------------------
def new_suppression(
    pattern: dict[str, Any], rules: tuple[str, ...], *, reason: str, owner: str, expires: str, sid: str | None
) -> dict[str, Any]:
    """The config entry of a suppression (its id derived from pattern and rules unless given)."""
    entry: dict[str, Any] = {
        "id": sid or suppression_id(pattern, rules),
        "pattern": pattern,
        "reason": reason,
        "owner": owner,
        "expires": expires,
    }
    if rules:
        entry["rules"] = list(rules)
    return entry


def run_add(aws: Aws, ui: UI, *, outputs: dict[str, str], entry: dict[str, Any], yes: bool) -> str:
    """Add ``entry`` (``new_suppression``) to the config in force, through upload-config's path."""
    in_force = config_in_force(aws, outputs)
    sid = entry["id"]
    existing = in_force.raw.get("suppressions") or []
    if not isinstance(existing, list):
        raise UsageError(f"{in_force.label}: 'suppressions' is not a list; fix it with upload-config.")
    if any(isinstance(s, dict) and s.get("id") == sid for s in existing):
        raise UsageError(
            f"Suppression {sid} already exists in {in_force.label}.",
            hint="`trailwatch suppress list` shows it; remove it first or pass another --id.",
        )
    edited = {**in_force.raw, "suppressions": [*existing, entry]}
    ui.info(f"Adding suppression {sid} to {in_force.label}: {json.dumps(entry['pattern'], sort_keys=True)}")
    upload_edited(aws, ui, edited, label=f"{in_force.label} + suppression {sid}", outputs=outputs, yes=yes)
    return sid


def run_remove(aws: Aws, ui: UI, *, outputs: dict[str, str], sid: str, yes: bool) -> None:
    in_force = config_in_force(aws, outputs)
    existing = in_force.raw.get("suppressions") or []
    kept = [s for s in existing if not (isinstance(s, dict) and s.get("id") == sid)]
    if len(kept) == len(existing):
        ids = [str(s.get("id")) for s in existing if isinstance(s, dict)]
        raise UsageError(
            f"No suppression {sid} in {in_force.label}.",
            hint=f"Suppressions: {', '.join(ids)}" if ids else "The config has no suppressions.",
        )
    edited = dict(in_force.raw)
    if kept:
        edited["suppressions"] = kept
    else:
        edited.pop("suppressions")
    upload_edited(aws, ui, edited, label=f"{in_force.label} - suppression {sid}", outputs=outputs, yes=yes)


def run_list(aws: Aws, ui: UI, *, outputs: dict[str, str], now: datetime) -> None:
    from trailwatch import configcmd

    in_force = config_in_force(aws, outputs)
    config = configcmd.parse_config_bytes(json.dumps(in_force.raw).encode(), in_force.label)
    if ui.json_mode:
        for s in config.suppressions:
            ui.json({**s.as_json(), "days_left": round(days_left(s.expires_at, now), 2)})
        return
    if not config.suppressions:
        ui.info(f"No suppressions in {in_force.label}.")
        return
    ui.table(LIST_HEADERS, list_rows(config, now))
    for line in expiry_warnings(config, now):
        ui.warn(line)


@click.group("suppress")
def suppress() -> None:
    """Hide known-benign events from alerting until a date (they are still stored, marked).

    \b
    Example:
      trailwatch suppress add --rule cis-4.1-unauthorized-api-calls \\
          --principal arn:aws:iam::123456789012:role/scanner \\
          --reason "scanner, denied by design" --owner secops@example.com --expires 30d
    """


def _context(obj: Any, json_mode: bool = False) -> tuple[Aws, UI, dict[str, str]]:
    from trailwatch import stack

    aws, ui = Aws(obj), UI(verbose=obj.verbose, json_mode=json_mode)
    return aws, ui, stack.stack_outputs(stack.require_stack(aws, obj.stack_name))


def _commands() -> None:
    """Define the subcommands (here, so that main.global_options is imported only with this module)."""
    from trailwatch.main import EPILOG, global_options

    @suppress.command("add", epilog=EPILOG)
    @global_options
    @click.option("--pattern", "pattern_json", metavar="JSON", help="EventBridge pattern on the record.")
    @click.option("--rule", "rules", multiple=True, metavar="ID", help="Only for this rule (repeatable).")
    @click.option("--principal", multiple=True, metavar="ARN", help="userIdentity.arn (repeatable).")
    @click.option("--event-name", multiple=True, metavar="NAME", help="eventName (repeatable).")
    @click.option("--source-ip", multiple=True, metavar="IP|CIDR", help="sourceIPAddress (repeatable).")
    @click.option("--account", multiple=True, metavar="ID", help="recipientAccountId (repeatable).")
    @click.option("--reason", required=True, help="Why these events are benign.")
    @click.option("--owner", required=True, help="Who answers for it (a person or team).")
    @click.option("--expires", required=True, metavar="DATE|Nd", help="2027-03-31, or 30d from today.")
    @click.option("--id", "sid", metavar="ID", help="Suppression id [default: derived from what it hides].")
    @click.option(
        "--yes", is_flag=True, help="Upload without asking (adding a suppression weakens alerting)."
    )
    @click.pass_obj
    def add(
        obj: Any,
        pattern_json: str | None,
        rules: tuple[str, ...],
        principal: tuple[str, ...],
        event_name: tuple[str, ...],
        source_ip: tuple[str, ...],
        account: tuple[str, ...],
        reason: str,
        owner: str,
        expires: str,
        sid: str | None,
        yes: bool,
    ) -> None:
        """Add a suppression to the config in force and upload it (validated, diffed, asked)."""
        pattern = build_pattern(
            pattern_json, principals=principal, event_names=event_name, source_ips=source_ip, accounts=account
        )
        expiry = parse_expires(expires, datetime.now(UTC).date())
        entry = new_suppression(pattern, rules, reason=reason, owner=owner, expires=expiry, sid=sid)
        aws, ui, outputs = _context(obj)
        run_add(aws, ui, outputs=outputs, entry=entry, yes=yes)

    @suppress.command("list", epilog=EPILOG)
    @global_options
    @click.option("--json", "json_mode", is_flag=True, help="One JSON object per suppression.")
    @click.pass_obj
    def list_(obj: Any, json_mode: bool) -> None:
        """The suppressions of the config in force: scope, owner, expiry, days left, reason."""
        aws, ui, outputs = _context(obj, json_mode)
        run_list(aws, ui, outputs=outputs, now=datetime.now(UTC))

    @suppress.command("remove", epilog=EPILOG)
    @global_options
    @click.argument("sid", metavar="ID")
    @click.option("--yes", is_flag=True, help="Upload without asking.")
    @click.pass_obj
    def remove(obj: Any, sid: str, yes: bool) -> None:
        """Remove a suppression from the config in force and upload it."""
        aws, ui, outputs = _context(obj)
        run_remove(aws, ui, outputs=outputs, sid=sid, yes=yes)


_commands()
