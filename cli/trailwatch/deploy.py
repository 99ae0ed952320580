"""`trailwatch deploy`: package, plan, execute, upload the config, verify, summarise."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from trailwatch import package as packaging
from trailwatch import resources, stack
from trailwatch.errors import AwsError, UsageError, bucket_name_taken, error_code
from trailwatch.session import Aws
from trailwatch.ui import UI

MANAGED_PARAMETERS = ("CodeBucket", "CodeKey")


def parse_param_options(values: tuple[str, ...], allowed: list[str]) -> dict[str, str]:
    """`--param KEY=VALUE` pairs, checked against the template's parameters."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected KEY=VALUE.")
        if key in MANAGED_PARAMETERS:
            raise UsageError(f"--param {key}: set by the packaging step, not by hand.")
        if key not in allowed:
            names = ", ".join(k for k in allowed if k not in MANAGED_PARAMETERS)
            raise UsageError(f"--param {key}: unknown parameter. Allowed: {names}.")
        out[key] = value
    return out


# -- names AWS would reject ---------------------------------------------------------------------------
# S3 general purpose bucket naming rules and CloudTrail trail naming rules, as documented; main.yaml's
# AllowedPatterns say the same (tests/unit/test_template.py holds both to the same cases).
_IP_LIKE = re.compile(r"\d+\.\d+\.\d+\.\d+")
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def _name_problem(
    name: str, longest: int, allowed: tuple[str, str], ends: str, together: tuple[str, str]
) -> str | None:
    """The form S3 and CloudTrail names share: 3 to ``longest`` characters matching ``allowed`` (a regex and
    its words), first and last alphanumeric (``ends``: in words), no match of ``together`` (a regex of
    characters that must not stand side by side, and its message), not formatted as an IP address."""
    if not 3 <= len(name) <= longest:
        return f"must be 3 to {longest} characters long"
    if not re.fullmatch(allowed[0], name):
        return f"may hold only {allowed[1]}"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return f"must start and end with {ends}"
    if re.search(together[0], name):
        return together[1]
    if _IP_LIKE.fullmatch(name):
        return "must not be formatted as an IP address"
    return None


def bucket_name_problem(name: str) -> str | None:
    """Why S3 would reject this bucket name, or None."""
    chars = (r"[a-z0-9.-]+", "lowercase letters, digits, periods and hyphens")
    adjacent = (r"\.\.", "must not contain two adjacent periods")
    problem = _name_problem(name, 63, chars, "a lowercase letter or digit", adjacent)
    if problem:
        return problem
    for prefix in BUCKET_RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"must not start with {prefix!r} (reserved by S3)"
    for suffix in BUCKET_RESERVED_SUFFIXES:
        if name.endswith(suffix):
            return f"must not end with {suffix!r} (reserved by S3)"
    return None


def trail_name_problem(name: str) -> str | None:
    """Why CloudTrail would reject this trail name, or None."""
    chars = (r"[A-Za-z0-9._-]+", "letters, digits, periods, underscores and hyphens")
    adjacent = (r"[._-]{2}", "must not have two of . _ - side by side (e.g. 'my._trail', 'my--trail')")
    return _name_problem(name, 128, chars, "a letter or digit", adjacent)


def email_problem(address: str) -> str | None:
    """Why this is not one plain email address (SNS would reject it or the template's pattern would)."""
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", address):
        return "must be one address local-part@domain, without spaces or line breaks"
    return None


def table_name_problem(name: str) -> str | None:
    """Why DynamoDB would reject this table name, or None."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", name):
        return "must be 3 to 255 letters, digits, underscores, hyphens and periods"
    return None


NAME_CHECKS = {
    "TrailBucketName": ("--bucket", bucket_name_problem),
    "TrailName": ("--param TrailName", trail_name_problem),
    "AlertEmail": ("--email", email_problem),
    "EventsTableName": ("--param EventsTableName", table_name_problem),
}


def check_names(given: dict[str, str]) -> None:
    """Reject, before any AWS call, names that S3, CloudTrail, SNS or DynamoDB would reject mid-deploy."""
    problems = []
    for key, (flag, problem_of) in NAME_CHECKS.items():
        if key in given and (problem := problem_of(given[key])) is not None:
            problems.append(f"{flag} {given[key]!r}: {problem}")
    if problems:
        raise UsageError("; ".join(problems) + ".", hint="Nothing was changed. Choose names AWS accepts.")


def build_parameters(
    declared: dict[str, dict[str, Any]], given: dict[str, str], existing: dict[str, str] | None
) -> list[dict[str, Any]]:
    """CloudFormation Parameters: given values; on update the previous value of the rest."""
    params: list[dict[str, Any]] = []
    missing: list[str] = []
    for key, spec in declared.items():
        if key in given:
            params.append({"ParameterKey": key, "ParameterValue": given[key]})
        elif existing is not None and key in existing:
            params.append({"ParameterKey": key, "UsePreviousValue": True})
        elif "Default" not in spec:
            missing.append(key)
    if missing:
        flags = {"TrailBucketName": "--bucket NAME", "AlertEmail": "--email ADDR"}
        named = ", ".join(flags.get(k, f"--param {k}=VALUE") for k in missing)
        raise UsageError(f"This deploy needs {named} (no previous value to keep).")
    return params


def check_trail_bucket_free(aws: Aws, bucket: str) -> None:
    """Fail early, with a clear reason, when the stack could not create the trail bucket."""
    try:  # with ExpectedBucketOwner: a bucket of another account letting us in is not "ours" (403)
        aws.client("s3").head_bucket(Bucket=bucket, **packaging.owner_args(aws))
    except botocore.exceptions.ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return
        if code in ("403", "AccessDenied"):
            raise bucket_name_taken(bucket, "another AWS account owns it") from exc
        raise
    raise bucket_name_taken(
        bucket,
        "it already exists in this account (retained by an earlier deploy?); delete it or pick another "
        "(`trailwatch destroy` prints the commands that empty and delete a retained trail bucket)",
    )


def check_table_free(aws: Aws, table: str) -> None:
    """Fail early when a table of this name exists: the stack's CreateTable would fail mid-deploy."""
    try:
        aws.client("dynamodb").describe_table(TableName=table)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return
        raise
    raise AwsError(
        f"DynamoDB table {table!r} already exists in {aws.region} (retained by an earlier deploy?): "
        "the stack cannot create it.",
        hint=f"Delete it (its stored events go with it): `aws dynamodb delete-table {aws.cli_flags()} "
        f"--table-name {table}`, or pick another name with --param EventsTableName=NAME.",
    )


def check_fixed_names_free(
    aws: Aws, declared: dict[str, dict[str, Any]], given: dict[str, str], existing: dict[str, str] | None
) -> None:
    """Every fixed-name resource the change set would create (on a first create: all of them; on an
    update: those whose name changes) must not exist yet; checked before anything changes."""

    def new_value(key: str) -> str | None:
        value = given.get(key)
        if existing is None:
            return value if value is not None else declared.get(key, {}).get("Default")
        return value if value is not None and existing.get(key) != value else None

    if bucket := new_value("TrailBucketName"):
        check_trail_bucket_free(aws, bucket)
    if table := new_value("EventsTableName"):
        check_table_free(aws, str(table))


# -- outputs (Slack, webhook): their URLs and keys go to Secrets Manager, only the ARNs to the stack --------
OUTPUT_PARAMETERS = {"slack": "SlackSecretArn", "webhook": "WebhookSecretArn"}


@dataclass(frozen=True)
class OutputOptions:
    """`--slack-webhook`, `--webhook-url` and their per-output filters, as given (None: keep as stored)."""

    slack_webhook: str | None = None
    slack_min_severity: str | None = None
    slack_rules: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhook_min_severity: str | None = None
    webhook_rules: tuple[str, ...] = ()

    def requested(self) -> dict[str, dict[str, Any]]:
        """Per output kind, the settings this deploy changes (kinds without any change are absent)."""
        out: dict[str, dict[str, Any]] = {}
        for kind, url, floor, rules in (
            ("slack", self.slack_webhook, self.slack_min_severity, self.slack_rules),
            ("webhook", self.webhook_url, self.webhook_min_severity, self.webhook_rules),
        ):
            change = {"url": url, "min_severity": floor, "rules": list(rules) or None}
            change = {key: value for key, value in change.items() if value is not None}
            if change:
                out[kind] = change
        return out


def output_secret_name(stack_name: str, kind: str) -> str:
    return f"trailwatch/{stack_name}/{kind}"


def check_output_options(options: OutputOptions) -> None:
    """Refuse, before any AWS call, a URL the processor would refuse (https only; http only to loopback)."""
    from trailwatch_processor.config import SEVERITIES
    from trailwatch_processor.outputs import url_problem

    problems = []
    for flag, url in (("--slack-webhook", options.slack_webhook), ("--webhook-url", options.webhook_url)):
        if url is not None and (problem := url_problem(url)):
            problems.append(f"{flag}: {problem}")  # the URL itself is a secret: not echoed
    for flag, floor in (
        ("--slack-min-severity", options.slack_min_severity),
        ("--webhook-min-severity", options.webhook_min_severity),
    ):
        if floor is not None and floor.lower() not in SEVERITIES:
            problems.append(f"{flag} {floor!r}: expected one of {', '.join(SEVERITIES)}")
    if problems:
        raise UsageError("; ".join(problems) + ".", hint="Nothing was changed.")


def store_output_secrets(
    aws: Aws, ui: UI, stack_name: str, options: OutputOptions, *, dry_run: bool = False
) -> dict[str, str]:
    """Create or update each requested output's secret; return the template parameters (secret ARNs).

    A webhook's signing key is generated once and kept when the URL or filters change, so receivers do
    not have to be re-keyed. In a dry run nothing is written: the existing ARN (or a placeholder) is used."""
    from trailwatch_processor.outputs import webhook

    client = aws.client("secretsmanager") if options.requested() else None
    params: dict[str, str] = {}
    for kind, change in options.requested().items():
        name = output_secret_name(stack_name, kind)
        current = _read_secret(client, name)
        doc = {**(current or {}), **change}
        if "url" not in doc:
            flag = "--slack-webhook" if kind == "slack" else "--webhook-url"
            raise UsageError(f"No {kind} output yet: give {flag} URL with the filter options.")
        if kind == "webhook" and not doc.get("signing_key"):
            doc["signing_key"] = webhook.new_signing_key()
        if dry_run:
            arn = _secret_arn(client, name) if current is not None else None
            params[OUTPUT_PARAMETERS[kind]] = arn or (
                f"arn:{aws.partition}:secretsmanager:{aws.region}:{aws.account_id()}:secret:{name}-xxxxxx"
            )
            ui.info(f"Dry run: would store the {kind} output in secret {name}.")
            continue
        text = json.dumps(doc)
        if current is None:
            arn = client.create_secret(
                Name=name,
                Description=f"trailwatch {kind} output of stack {stack_name} (url, filters"
                + (", signing key)" if kind == "webhook" else ")"),
                SecretString=text,
            )["ARN"]
        else:
            arn = client.put_secret_value(SecretId=name, SecretString=text)["ARN"]
        params[OUTPUT_PARAMETERS[kind]] = arn
        ui.progress(f"{kind} output stored in Secrets Manager secret {name}")
        if kind == "webhook":
            ui.info(
                f"Webhook signing key (for your receiver): aws secretsmanager get-secret-value --secret-id "
                f"{name} --query SecretString --output text {aws.cli_flags()}"
            )
    return params


def _read_secret(client: Any, name: str) -> dict[str, Any] | None:
    try:
        text = client.get_secret_value(SecretId=name)["SecretString"]
    except botocore.exceptions.ClientError as err:
        if error_code(err) == "ResourceNotFoundException":
            return None
        raise
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _secret_arn(client: Any, name: str) -> str:
    return str(client.describe_secret(SecretId=name)["ARN"])


NOTIFICATION_SOURCES = ("s3-eventbridge", "trail-sns")


def bucket_region(s3: Any, bucket: str) -> str:
    """The bucket's region, found rather than assumed: HeadBucket's ``x-amz-bucket-region`` (answered even
    on 403 for another account's bucket), else GetBucketLocation (None/"" means us-east-1)."""
    try:
        head = s3.head_bucket(Bucket=bucket)
        region = head.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
    except botocore.exceptions.ClientError as err:
        region = err.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region")
        if not region and err.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
            raise UsageError(f"--use-bucket {bucket!r}: no such bucket.") from None
    if region:
        return region
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)


def attach_parameters(
    s3: Any,
    *,
    use_bucket: str,
    bucket_account: str | None,
    log_prefix: str | None,
    kms_key: str | None,
    notification: str,
    trail_topic: str | None,
) -> dict[str, str]:
    """Template parameters of attach mode (read an existing trail bucket; never change its notifications:
    the owner adds EventBridge or a topic grant through `trailwatch owner-grants`)."""
    if notification not in NOTIFICATION_SOURCES:
        choices = ", ".join(NOTIFICATION_SOURCES)
        raise UsageError(f"--notification {notification!r}: expected one of {choices}.")
    if notification == "trail-sns" and not trail_topic:
        raise UsageError("--notification trail-sns needs --trail-topic ARN (the trail's SNS topic).")
    if bucket_account is not None and not (len(bucket_account) == 12 and bucket_account.isdigit()):
        raise UsageError(f"--bucket-account {bucket_account!r}: expected a 12-digit account id.")
    prefix = (log_prefix or "").strip("/")
    return {
        "ExistingBucketName": use_bucket,
        "ExistingBucketAccount": bucket_account or "",
        "ExistingBucketRegion": bucket_region(s3, use_bucket),
        "LogKeyPrefix": f"{prefix}/" if prefix else "",
        "ExistingLogFileKmsKeyArn": kms_key or "",
        "NotificationSource": notification,
        "TrailTopicArn": trail_topic or "",
    }


def run_deploy(
    aws: Aws,
    ui: UI,
    *,
    bucket: str | None,
    email: str | None,
    config_path: Path | None,
    params: tuple[str, ...],
    dry_run: bool,
    run_verify: bool,
    verify_timeout: float,
    artifacts_bucket: str | None = None,
    outputs: OutputOptions | None = None,
    attach: dict[str, str] | None = None,
    regions: str | None = None,
) -> int:
    from trailwatch import configcmd, fast_path

    outputs = outputs or OutputOptions()
    check_output_options(outputs)

    name = aws.options.stack_name
    config_path = config_path or resources.default_config_path()
    configcmd.load_config(config_path)  # invalid: fail before anything changes
    template = resources.template_text()
    declared = stack.template_parameters(template)
    given = parse_param_options(params, list(declared))
    if bucket:
        given["TrailBucketName"] = bucket
    if email:
        given["AlertEmail"] = email
    if attach:
        given.update(attach)
    check_names(given)
    forwarder_regions = fast_path.parse_regions(regions, aws.region)  # fast path: bad names before any change

    ui.step(f"Deploying stack {name} to {aws.region} (account {aws.account_id()})")
    current = stack.describe_stack(aws, name)
    existing = stack.deployed_parameters(current)
    check_fixed_names_free(aws, declared, given, existing)
    if outputs.requested():
        missing = [p for p in OUTPUT_PARAMETERS.values() if p not in declared]
        if missing:
            raise UsageError(f"This template has no output parameters ({', '.join(missing)}).")
        ui.step("Storing the output secrets")
        given.update(store_output_secrets(aws, ui, name, outputs, dry_run=dry_run))

    ui.step("Packaging the processor")
    pkg = packaging.build_package()
    ui.progress(f"{len(pkg.files)} files, sha256 {pkg.sha256[:16]}")
    code_bucket, code_key, _ = packaging.upload_package(aws, ui, pkg, bucket=artifacts_bucket)
    given["CodeBucket"], given["CodeKey"] = code_bucket, code_key
    parameters = build_parameters(declared, given, existing)

    ui.step("Planning (change set)")
    template_arg = stack.template_argument(aws, template, code_bucket)
    plan = stack.create_plan(aws, ui, name, template_arg, parameters)
    stack.print_plan(ui, plan)
    if dry_run:
        stack.discard_plan(aws, ui, plan)
        if forwarder_regions:
            ui.info(f"Dry run: would deploy fast path forwarders in {', '.join(forwarder_regions)}.")
        ui.info("Dry run: nothing changed.")
        if ui.json_mode:
            ui.json({"stack": name, "dry_run": True, "no_changes": plan.no_changes, "changes": plan.changes})
        return 0
    if plan.no_changes:
        deployed = stack.require_stack(aws, name)
    else:
        ui.step("Executing")
        deployed = stack.execute_plan(aws, ui, plan)
        ui.success(f"Stack {name}: {deployed['StackStatus']}")

    from trailwatch import configcmd  # here: configcmd imports the processor's rules lazily too

    ui.step("Uploading the config")
    # --config is the deployer's explicit choice: a removal is shown (warning), not asked about; the
    # processor still alerts it (high).
    configcmd.upload(
        aws,
        ui,
        config_path or resources.default_config_path(),
        outputs=stack.stack_outputs(deployed),
        yes=True,
    )
    # Fast path: forwarders in other regions, then the rules' pattern and state from the config.
    if forwarder_regions:
        fast_path.deploy_forwarders(
            aws,
            ui,
            forwarder_regions,
            template=template,
            template_arg=template_arg,
            home_parameters={**stack.stack_parameters(deployed), **given},
            home_outputs=stack.stack_outputs(deployed),
        )
    ui.step("Fast path rule")
    fast_path.sync_rules(aws, ui, configcmd.load_config(config_path)[0], stack.stack_outputs(deployed))

    result = 0
    if run_verify:
        from trailwatch import verify

        ui.step("Verifying")
        # Attach mode: the checks only; the probe waits for a real delivery, after `owner-grants`.
        result = verify.run_verify(aws, ui, probe=not attach, timeout=verify_timeout)
        if attach:
            ui.info("Attach mode: apply `trailwatch owner-grants`, then `trailwatch verify --timeout 360`.")
    print_summary(aws, ui, stack.stack_outputs(deployed), email or (existing or {}).get("AlertEmail"))
    if ui.json_mode:
        ui.json(
            {
                "stack": name,
                "status": deployed.get("StackStatus"),
                "no_changes": plan.no_changes,
                "changes": plan.changes,
                "package": {"bucket": code_bucket, "key": code_key, "sha256": pkg.sha256},
                "outputs": stack.stack_outputs(deployed),
                "verify": None if not run_verify else ("passed" if result == 0 else "failed"),
            }
        )
    return result


def print_summary(aws: Aws, ui: UI, outputs: dict[str, str], email: str | None) -> None:
    ui.step("Summary")
    ui.table(["output", "value"], sorted(outputs.items()))
    if email:
        ui.info(
            f"Confirm the subscription: AWS sent a confirmation mail to {email}; no alert arrives before."
        )
    stack_flag = "" if aws.options.stack_name == "trailwatch" else f" --stack-name {aws.options.stack_name}"
    ui.info("Next:")
    ui.info(f"  trailwatch verify{stack_flag}              check the pipeline end to end")
    ui.info(f"  trailwatch events --since 24h{stack_flag}  list detected events")
    ui.info(f"  trailwatch upload-config FILE{stack_flag}  change the monitored events")
