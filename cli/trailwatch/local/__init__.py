"""The local AWS: moto's server plus what trailwatch needs of it (CloudFormation models moto lacks,
an SQS-to-Lambda runtime without Docker, and CloudTrail delivery of the calls it serves)."""
