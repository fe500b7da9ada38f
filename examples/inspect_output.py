"""Look at a synthgen output with pandas: funnel, token lengths, pass rates, decoded samples.

python examples/inspect_output.py OUT
"""

import json
import sys
from pathlib import Path

import pandas as pd

from pipeline.tokens import load_tokenizer

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
manifest = json.loads((out / "manifest.json").read_text())
data = pd.read_parquet(out / "data")
rejected = pd.read_parquet(out / "rejected")
attempts = pd.read_parquet(out / "attempts")

print("funnel:", manifest["funnel"]["requested"], "requested ->", len(data), "kept")
print(rejected.groupby(["stage", "reason"]).size().rename("rows").to_string(), "\n")

print("tokens per sample:")
print(data.groupby("domain")["num_tokens"].describe()[["mean", "50%", "max"]], "\n")

print("pass rate over attempts:")
print(data.groupby("domain")["pass_rate"].mean().round(3), "\n")
print("attempt verdicts:")
print(attempts.groupby(["domain", "verdict"]).size().rename("attempts").to_string(), "\n")

tok = load_tokenizer(manifest["tokenizer"]["name"])
row = data.sort_values("id").iloc[0]
print(f"--- {row['id']}: the full conversation, decoded from input_ids")
print(tok.decode(row["input_ids"]))
print("--- the tokens the loss is computed on (loss_mask == 1)")
print(tok.decode(row["input_ids"][row["loss_mask"] == 1]))
