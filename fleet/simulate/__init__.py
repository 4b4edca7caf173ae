"""`fleet simulate`: replay load against a group's deployed scaling rules and the spot reconciler's own
decision function, in a model of AWS (pure: no boto3, no Pulumi). See model.py for the model."""
