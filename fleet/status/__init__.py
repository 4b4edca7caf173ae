"""`fleet status`: the live stack joined with the nodes file (join, pure) and shown as a table (view)."""
