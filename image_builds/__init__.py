"""What the image Command runs (boto3, no Pulumi).

Modules, one job each:

- `blocks`     pure block logic: sizes, data extents, zero detection, SHA-256 per block, linear aggregate
- `retry`      error classification and exponential backoff with full jitter
- `progress`   progress on stderr (a bar on a TTY, periodic plain lines otherwise)
- `convert`    any disk image format -> raw (`qemu-img`)
- `ebs_upload` raw disk image -> new EBS snapshot through the EBS direct APIs (like coldsnap)
- `put_block`  the lean, signed PutSnapshotBlock the upload sends each block with
- `in_flight`  how many PutSnapshotBlock calls to keep in flight (Little's law on observed timings)
- `register`   snapshot -> AMI (ENA, explicit boot mode, ROOT_DEVICE_NAME, gp3), tagged
- `registry`   find a cached AMI by image hash; tag an AMI and its snapshots
- `retention`  keep the newest N AMIs of a group, never one in use; deregister + delete snapshots
"""
