"""What the pipeline writes and what reads it back: shards, packing, report, inspect, plan."""
