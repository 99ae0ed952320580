"""The hunt's corpus of months-old log files, shared by `bench/hunt.py` and the hunt e2e test
(`from bench import hunt_corpus`): small gzip log files of three accounts x two regions x four days, in
which every ninth file holds one `GetSecretValue` by an evil user agent (the hunt's match)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from trailwatch import synth

HOME_ACCOUNT = "123456789012"  # the local AWS's own account
ACCOUNTS = ("111111111111", "222222222222", HOME_ACCOUNT)
REGIONS = ("us-east-1", "eu-west-1")
FIRST_DAY = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 4
WINDOW = ["--since", "2026-10-01", "--until", "2026-10-04T23:59:59"]  # `trailwatch hunt`'s: the four days
EVIL = "evil-agent/1.0"


@dataclass
class Corpus:
    files: dict[str, bytes] = field(default_factory=dict)  # key -> gzip body
    records: int = 0
    expected: set[str] = field(default_factory=set)  # eventIDs of the matches inside the window
    outside: set[str] = field(default_factory=set)  # eventIDs of the matches outside it


def evil_record(rng: random.Random, account: str, region: str, when: datetime) -> dict:
    """A match: `GetSecretValue` by mallory with the evil user agent."""
    return synth.make_record(
        "GetSecretValue",
        identity=synth.iam_user("mallory", account=account),
        account=account,
        region=region,
        time=when,
        user_agent=EVIL,
        event_id=str(uuid.UUID(int=rng.getrandbits(128))),
    )


def make_corpus(
    per_folder: int,
    rng: random.Random,
    *,
    records_per_file: int,
    monitored_fraction: float,
    redelivered: bool = False,
    outside: int = 0,
) -> Corpus:
    """`per_folder` files a day for each account and region, five minutes apart, of `records_per_file`
    background records (and a match in every ninth). `redelivered`: every 25th file that has no match of
    its own repeats the last match (CloudTrail delivered it twice: one event). `outside`: as many more
    files, each one match, a few days before the window."""
    corpus = Corpus()
    previous: dict | None = None
    for account in ACCOUNTS:
        for region in REGIONS:
            for day in range(DAYS):
                for n in range(per_folder):
                    when = FIRST_DAY + timedelta(days=day, minutes=5 * n + 1)
                    records = synth.background_records(
                        records_per_file, rng, monitored_fraction=monitored_fraction, when=when
                    )
                    if n % 9 == 0:
                        previous = evil_record(rng, account, region, when)
                        records.append(previous)
                        corpus.expected.add(previous["eventID"])
                    elif redelivered and n % 25 == 0 and previous is not None:
                        records.append(previous)
                    corpus.records += len(records)
                    key = synth.log_key(account, region, when, unique=f"{rng.getrandbits(64):016X}")
                    corpus.files[key] = synth.gzip_log(records)
    for n in range(outside):
        when = FIRST_DAY - timedelta(days=3, minutes=-n)
        record = evil_record(rng, HOME_ACCOUNT, REGIONS[0], when)
        corpus.outside.add(record["eventID"])
        corpus.records += 1
        corpus.files[synth.log_key(HOME_ACCOUNT, REGIONS[0], when)] = synth.gzip_log([record])
    return corpus
