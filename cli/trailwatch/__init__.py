"""trailwatch: deploy, verify and operate CloudTrail security monitoring for an AWS account."""

__version__ = "0.1.0"
