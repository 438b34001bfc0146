"""Training: configs, loops, run folders (resolved config, metrics JSONL, checkpoints)."""
