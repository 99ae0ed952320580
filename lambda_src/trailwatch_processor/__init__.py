"""trailwatch log processor: the Lambda that turns CloudTrail log files into stored events and alerts.

Standard library and the Lambda runtime's boto3 only. The CLI imports parsing, matching and config
validation from here; there is one implementation.
"""

__version__ = "0.1.0"
