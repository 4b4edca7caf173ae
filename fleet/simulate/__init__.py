"""`fleet simulate`: replay load against a group's deployed scaling rules and the spot reconciler's own
decision function, in a model of AWS (pure: no boto3, no Pulumi). See model.py for the model."""

# The synthetic traces by name (traces.py builds them). Here, not in traces.py, so that registering the
# command (every `fleet` run builds the parser) does not import numpy.
SYNTHETIC = ("diurnal", "flash", "business-day")
