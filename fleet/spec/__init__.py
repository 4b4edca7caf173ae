"""Read and check nodes.yaml and the stack config: pure logic, no Pulumi, no boto3."""
