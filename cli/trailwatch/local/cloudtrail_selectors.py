"""Which trails take a CloudTrail record: region and global-service-event rules, basic and advanced selectors.

The rules of AWS's documentation, applied to the records `cloudtrail_records` builds and the trails of moto's
CloudTrail backend (whose attributes may be booleans or the strings "true"/"false").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Events of these services are global: delivered to trails that include global service events.
GLOBAL_EVENT_SOURCES = frozenset(
    {"iam.amazonaws.com", "sts.amazonaws.com", "cloudfront.amazonaws.com", "route53.amazonaws.com"}
)


def truthy(value: Any, default: bool = True) -> bool:
    """A trail or selector flag, which moto may hold as a bool, a "true"/"false" string or None."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _field_values(record: Mapping[str, Any], name: str) -> str | None:
    """The value an advanced selector field looks at; resources.* look at the data resource (first)."""
    if name.startswith("resources."):
        resources = record.get("resources") or []
        if not resources or record.get("eventCategory") != "Data":
            return None
        value = resources[0].get(name.split(".", 1)[1])
        return None if value is None else str(value)
    value = record.get(name)
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def field_selector_matches(selector: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """One advanced field selector: any of Equals/StartsWith/EndsWith (when given), none of the Not* ones."""
    value = _field_values(record, str(selector.get("Field", "")))
    positives = [
        (selector.get("Equals"), lambda v, x: v == x),
        (selector.get("StartsWith"), lambda v, x: v.startswith(x)),
        (selector.get("EndsWith"), lambda v, x: v.endswith(x)),
    ]
    negatives = [
        (selector.get("NotEquals"), lambda v, x: v == x),
        (selector.get("NotStartsWith"), lambda v, x: v.startswith(x)),
        (selector.get("NotEndsWith"), lambda v, x: v.endswith(x)),
    ]
    given = [(values, test) for values, test in positives if values]
    if given and (value is None or not any(test(value, x) for values, test in given for x in values)):
        return False
    for values, test in negatives:
        if values and value is not None and any(test(value, x) for x in values):
            return False
    return True


def advanced_selectors_match(selectors: Iterable[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    return any(
        all(field_selector_matches(fs, record) for fs in selector.get("FieldSelectors") or [])
        for selector in selectors
    )


def basic_selectors_match(selectors: Iterable[Mapping[str, Any]], record: Mapping[str, Any]) -> bool:
    """Basic event selectors: ReadWriteType, IncludeManagementEvents, ExcludeManagementEventSources and
    DataResources (ARN prefixes; `arn:aws:s3` / `arn:aws:lambda` mean every object / function)."""
    read_only = bool(record.get("readOnly"))
    for selector in selectors:
        rw = selector.get("ReadWriteType", "All")
        if (rw == "ReadOnly" and not read_only) or (rw == "WriteOnly" and read_only):
            continue
        if record.get("eventCategory") == "Management":
            excluded = selector.get("ExcludeManagementEventSources") or []
            if truthy(selector.get("IncludeManagementEvents")) and record.get("eventSource") not in excluded:
                return True
            continue
        resource = (record.get("resources") or [{}])[0]
        for data in selector.get("DataResources") or []:
            if data.get("Type") != resource.get("type"):
                continue
            for value in data.get("Values") or []:
                if value in ("arn:aws:s3", "arn:aws:lambda") or str(resource.get("ARN", "")).startswith(
                    value
                ):
                    return True
    return False


def trail_selects(trail: Any, record: Mapping[str, Any]) -> bool:
    """Whether `trail`'s event selectors take the record (no selectors: all management events)."""
    basic = getattr(trail, "event_selectors", None) or []
    advanced = getattr(trail, "advanced_event_selectors", None) or []
    if advanced:
        return advanced_selectors_match(advanced, record)
    if basic:
        return basic_selectors_match(basic, record)
    return record.get("eventCategory") == "Management"


def trail_covers_region(trail: Any, record: Mapping[str, Any]) -> bool:
    """Region and global-service-event rules: a global event goes to every trail including global service
    events; any other to multi-region trails and to the trail of its own region."""
    if record.get("eventSource") in GLOBAL_EVENT_SOURCES:
        return truthy(getattr(trail, "include_global_service_events", True))
    return (
        truthy(getattr(trail, "is_multi_region", False), False)
        or record.get("awsRegion") == trail.region_name
    )
