"""boto3 operations the CLI and the Commands run (rollout, deploy) and the client they share."""
