"""The `trailwatch` command line: a Click group with the global AWS options on every command."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from trailwatch import __version__
from trailwatch.errors import EXIT_USAGE, ConfigInvalid, DeployFailed, explain
from trailwatch.session import DEFAULT_STACK_NAME, Aws, Options, check_endpoint_url
from trailwatch.ui import UI, format_table

EPILOG = """\b
Exit codes:
  0  ok
  1  a check failed (verify, rules test)
  2  usage or config error (bad option, invalid config, no credentials or region, scan input unreadable)
  3  AWS error (access denied, bucket name taken, stack failed or in ROLLBACK_COMPLETE, template rejected)

\b
AWS settings come from the options or, as for the AWS CLI, from AWS_PROFILE, AWS_REGION /
AWS_DEFAULT_REGION, AWS_ENDPOINT_URL and the usual credential chain."""

# Commands imported on first use (the local AWS takes a second to import).
LAZY_COMMANDS = {
    "local": "trailwatch.local.commands",
    "demo": "trailwatch.local.demo",
    "rules": "trailwatch.rulescmd",  # the `rules` group (rules test, rules list, ...)
    # -- noise control: `suppress add|list|remove` edits the config in force
    "suppress": "trailwatch.suppress",
    # Hunt: `trailwatch hunt ...` and `trailwatch hunt results ID` (cli/trailwatch/hunt.py).
    "hunt": "trailwatch.hunt",
}


class ExplainedExit(click.ClickException):
    """A known error: one line, optional details and hint, a documented exit code."""

    def __init__(self, message: str, hint: str | None, exit_code: int, details: list[str]) -> None:
        super().__init__(message)
        self.hint = hint
        self.exit_code = exit_code
        self.details = details

    def show(self, file: Any = None) -> None:
        UI().error(self.message, self.hint, self.details)


def _details(exc: BaseException) -> list[str]:
    if isinstance(exc, ConfigInvalid):
        return list(exc.details)
    if isinstance(exc, DeployFailed) and exc.failures:
        return ["Failed resources:", *format_table(["resource", "type", "status", "reason"], exc.failures)]
    return []


class TrailwatchGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            explained = explain(exc)
            if explained is None:
                raise
            raise ExplainedExit(
                explained.message, explained.hint, explained.exit_code, _details(exc)
            ) from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(super().list_commands(ctx))
        names.update(LAZY_COMMANDS)
        return sorted(names)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            command = _load_lazy(cmd_name, LAZY_COMMANDS[cmd_name])
        return command


def _load_lazy(name: str, module_name: str) -> click.Command:
    module = importlib.import_module(module_name)
    for value in vars(module).values():
        if isinstance(value, click.Command) and value.name == name:
            return value
    raise RuntimeError(f"{module_name} defines no Click command named {name!r}")


# -- global options, accepted before and after the subcommand name ---------------------------------
def _env_option(name: str, envvars: list[str], help: str, **kwargs: Any) -> Callable[..., Any]:
    """A group option read from the environment too, the first variable named in its help."""
    return click.option(name, envvar=envvars, help=f"{help} [env {envvars[0]}].", **kwargs)


def _endpoint_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Reject a malformed --endpoint-url / AWS_ENDPOINT_URL as a usage error (exit 2), before any AWS call."""
    if not value:
        return value
    try:
        return check_endpoint_url(value)
    except ValueError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


def _store(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value == 0:
            return
        if attr == "endpoint_url":
            value = _endpoint_url(ctx, param, value)
        options = ctx.ensure_object(Options)
        if attr == "verbose":
            options.verbose += value
        else:
            setattr(options, attr, value)

    return callback


def global_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The group's AWS options again on a subcommand (they override the group's and the environment)."""
    decorators = [
        click.option("--region", callback=_store("region"), expose_value=False, help="AWS region."),
        click.option("--profile", callback=_store("profile"), expose_value=False, help="AWS profile."),
        click.option(
            "--endpoint-url", callback=_store("endpoint_url"), expose_value=False, help="AWS endpoint."
        ),
        click.option("--stack-name", callback=_store("stack_name"), expose_value=False, help="Stack name."),
        click.option("-v", "--verbose", count=True, callback=_store("verbose"), expose_value=False),
    ]
    return functools.reduce(lambda f, d: d(f), reversed(decorators), command)


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Monitored-events config [default: the bundled events.json].",
)


@click.group(cls=TrailwatchGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@_env_option("--region", ["AWS_REGION", "AWS_DEFAULT_REGION"], "AWS region")
@_env_option("--profile", ["AWS_PROFILE"], "Named AWS profile")
@_env_option("--endpoint-url", ["AWS_ENDPOINT_URL"], "AWS endpoint, e.g. a local AWS", callback=_endpoint_url)
@click.option(
    "--stack-name", default=DEFAULT_STACK_NAME, show_default=True, help="CloudFormation stack name."
)
@click.option("-v", "--verbose", count=True, help="More output (repeatable).")
@click.version_option(__version__, prog_name="trailwatch")
@click.pass_context
def cli(
    ctx: click.Context,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
    stack_name: str,
    verbose: int,
) -> None:
    """trailwatch: real-time security monitoring for an AWS account from CloudTrail.

    \b
    Example:
      trailwatch deploy --bucket my-trail-bucket-123456789012 --email me@example.com
    """
    ctx.obj = Options(
        region=region or None,
        profile=profile or None,
        endpoint_url=endpoint_url or None,
        stack_name=stack_name,
        verbose=verbose,
    )


# deploy's attach-mode options, passed to deploy.attach_parameters as they are
ATTACH_OPTIONS = ("use_bucket", "bucket_account", "log_prefix", "kms_key", "notification", "trail_topic")


def _aws_ui(options: Options, json_mode: bool = False) -> tuple[Aws, UI]:
    return Aws(options), UI(verbose=options.verbose, json_mode=json_mode)


@cli.command(epilog=EPILOG)
@global_options
@click.option(
    "--bucket", help="Name of the trail bucket to create (globally unique). Required the first time."
)
@click.option("--email", help="Address for alerts (confirm the subscription mail). Required the first time.")
@config_option
@click.option(
    "--param", "params", multiple=True, metavar="KEY=VALUE", help="Template parameter (repeatable)."
)
@click.option(
    "--artifacts-bucket",
    metavar="NAME",
    help="Bucket of this account for the Lambda package, created and hardened when missing "
    "[default: trailwatch-artifacts-<account>-<region>].",
)
@click.option(
    "--slack-webhook", metavar="URL", help="Slack incoming-webhook URL (stored in Secrets Manager)."
)
@click.option("--slack-min-severity", metavar="SEVERITY", help="Lowest alert severity sent to Slack.")
@click.option(
    "--slack-rule", "slack_rules", multiple=True, metavar="PATTERN", help="Only these rules to Slack."
)
@click.option("--webhook-url", metavar="URL", help="HTTPS endpoint for signed alert JSON (Secrets Manager).")
@click.option("--webhook-min-severity", metavar="SEVERITY", help="Lowest alert severity sent to the webhook.")
@click.option("--webhook-rule", "webhook_rules", multiple=True, metavar="PATTERN", help="Only these rules.")
@click.option(
    "--use-bucket", metavar="NAME", help="Attach mode: read this existing trail bucket (no new trail)."
)
@click.option("--bucket-account", metavar="ID", help="Attach mode: the account owning --use-bucket.")
@click.option("--log-prefix", metavar="P", help="Attach mode: the trail's S3 key prefix before AWSLogs/.")
@click.option(
    "--kms-key", metavar="ARN", help="Attach mode: the KMS key the trail's log files use (SSE-KMS)."
)
@click.option(
    "--notification",
    type=click.Choice(["s3-eventbridge", "trail-sns"]),
    default="s3-eventbridge",
    show_default=True,
    help="Attach mode: how new log files are announced.",
)
@click.option("--trail-topic", metavar="ARN", help="Attach mode with trail-sns: the trail's SNS topic.")
@click.option(
    "--regions",
    metavar="R1,R2",
    help="Fast path: deploy forwarder stacks (same template, Role=forwarder) in these other regions.",
)
@click.option("--no-verify", is_flag=True, help="Skip `trailwatch verify` after the deploy.")
@click.option("--dry-run", is_flag=True, help="Print the change set and stop; change nothing.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds verify's probe waits.")
@click.option("--json", "json_mode", is_flag=True, help="Progress on stderr; a JSON summary on stdout.")
@click.pass_obj
def deploy(
    options: Options,
    bucket: str | None,
    email: str | None,
    config_path: Path | None,
    params: tuple[str, ...],
    artifacts_bucket: str | None,
    regions: str | None,
    no_verify: bool,
    dry_run: bool,
    timeout: float,
    json_mode: bool,
    **grouped: Any,  # the outputs' options (deploy.OutputOptions) and attach mode's (ATTACH_OPTIONS)
) -> None:
    """Create or update the stack (change set), upload the config, verify.

    \b
    Example:
      trailwatch deploy --bucket my-trail-bucket-123456789012 --email me@example.com
    """
    from trailwatch.deploy import OutputOptions, attach_parameters, run_deploy

    aws, ui = _aws_ui(options, json_mode)
    attach_options = {name: grouped.pop(name) for name in ATTACH_OPTIONS}
    attach = attach_parameters(aws.client("s3"), **attach_options) if attach_options["use_bucket"] else None
    code = run_deploy(
        aws,
        ui,
        bucket=bucket,
        email=email,
        config_path=config_path,
        params=params,
        dry_run=dry_run,
        run_verify=not no_verify,
        verify_timeout=timeout,
        artifacts_bucket=artifacts_bucket,
        outputs=OutputOptions(**grouped),
        attach=attach,
        regions=regions,
    )
    raise click.exceptions.Exit(code)


@cli.command("owner-grants", epilog=EPILOG)
@global_options
@click.option("--owner-profile", metavar="PROFILE", help="Credentials of the bucket's owner (with --apply).")
@click.option("--apply", "apply_", is_flag=True, help="Apply (merging) with --owner-profile; default: print.")
@click.pass_obj
def owner_grants(options: Options, owner_profile: str | None, apply_: bool) -> None:
    """What the existing trail bucket's owner must grant an attach-mode stack: printed, or applied.

    \b
    Example:
      trailwatch owner-grants
      trailwatch owner-grants --owner-profile log-archive --apply
    """
    from trailwatch.owner_grants import run_owner_grants

    aws, ui = _aws_ui(options)
    raise click.exceptions.Exit(run_owner_grants(aws, ui, owner_profile=owner_profile, apply_=apply_))


@cli.command("upload-config", epilog=EPILOG)
@global_options
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Upload without asking when rules are removed or weakened.")
@click.pass_obj
def upload_config(options: Options, file: Path | None, yes: bool) -> None:
    """Validate a monitored-events config, show the change, upload it.

    \b
    Example:
      trailwatch upload-config my-events.json
    """
    from trailwatch import configcmd, fast_path, resources, stack

    aws, ui = _aws_ui(options)
    outputs = stack.stack_outputs(stack.require_stack(aws, options.stack_name))
    path = file or resources.default_config_path()
    configcmd.upload(aws, ui, path, outputs=outputs, yes=yes)
    fast_path.sync_rules(aws, ui, configcmd.load_config(path)[0], outputs)  # fast path: the rules follow


@cli.command(epilog=EPILOG)
@global_options
@click.option("--timeout", default=120.0, show_default=True, help="Seconds the probe waits for its alert.")
@click.option("--no-probe", is_flag=True, help="Only the configuration checks, no end-to-end probe.")
@click.option("--json", "json_mode", is_flag=True, help="Print the results as JSON.")
@click.pass_obj
def verify(options: Options, timeout: float, no_probe: bool, json_mode: bool) -> None:
    """Check the deployed pipeline, then prove it end to end with a probe event.

    Warnings (e.g. email subscription pending) do not fail; any failed check exits 1.

    \b
    Example:
      trailwatch verify --timeout 180
    """
    from trailwatch.verify import run_verify

    aws, ui = _aws_ui(options, json_mode)
    raise click.exceptions.Exit(run_verify(aws, ui, probe=not no_probe, timeout=timeout))


@cli.command(epilog=EPILOG)
@global_options
@click.option("--since", default="24h", show_default=True, help="Window: 30m, 24h, 7d, ...")
@click.option("--rule", help="Only events this rule id matched (as their primary rule or not).")
@click.option("--severity", help="Minimum severity: info, low, medium, high, critical.")
@click.option("--limit", default=50, show_default=True, help="At most this many events.")
@click.option("--account", help="Only events of this member account (12 digits).")
@click.option("--json", "json_mode", is_flag=True, help="One JSON object per line.")
@click.pass_obj
def events(
    options: Options,
    since: str,
    rule: str | None,
    severity: str | None,
    limit: int,
    account: str | None,
    json_mode: bool,
) -> None:
    """List stored security events, newest first.

    \b
    Example:
      trailwatch events --since 7d --severity high
    """
    from trailwatch.events import run_events

    aws, ui = _aws_ui(options, json_mode)
    code = run_events(aws, ui, since=since, rule=rule, severity=severity, limit=limit, account=account)
    raise click.exceptions.Exit(code)


@cli.command(epilog=EPILOG)
@global_options
@click.argument("paths", nargs=-1, required=True)
@config_option
@click.option("--since", help="Only files delivered since (7d, 12h, 2026-09-01), by their name's time stamp.")
@click.option("--until", help="Only files delivered until (needs --since).")
@click.option("--json", "json_mode", is_flag=True, help="One JSON object per matched record per line.")
@click.pass_obj
def scan(
    options: Options,
    paths: tuple[str, ...],
    config_path: Path | None,
    since: str | None,
    until: str | None,
    json_mode: bool,
) -> None:
    """Match CloudTrail logs offline: files, folders or s3:// prefixes.

    \b
    Example:
      trailwatch scan ./downloaded-logs --config events.json --json
      trailwatch scan s3://my-trail-bucket/AWSLogs/ --since 2d
    """
    from trailwatch.scan import run_scan

    ui = UI(verbose=options.verbose, json_mode=json_mode)
    raise click.exceptions.Exit(run_scan(ui, paths, config_path, options=options, since=since, until=until))


@cli.command(epilog=EPILOG)
@global_options
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def destroy(options: Options, yes: bool) -> None:
    """Delete the stack; say what is retained and how to remove it.

    \b
    Example:
      trailwatch destroy --yes
    """
    from trailwatch.destroy import run_destroy

    aws, ui = _aws_ui(options)

    def confirm(question: str) -> bool:
        return click.confirm(question, default=False)

    raise click.exceptions.Exit(run_destroy(aws, ui, yes=yes, confirm=confirm))


def main() -> None:
    """Console script entry point."""
    cli(prog_name="trailwatch")


__all__ = ["EXIT_USAGE", "cli", "global_options", "main"]
