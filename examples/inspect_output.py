"""Look at a synthgen output with pandas: funnel, token lengths, pass rates, decoded samples.

python examples/inspect_output.py OUT
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.stages.tokens import load_tokenizer

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
manifest = json.loads((out / "manifest.json").read_text())  # written last: the run finished
data = pd.read_parquet(out / "data")  # every shard, empty ones included
rejected = pd.read_parquet(out / "rejected")
attempts = pd.read_parquet(out / "attempts")

# The funnel: each requested problem is kept, or rejected once with a stage and a reason.
funnel = manifest["funnel"]
print(
    f"funnel: {funnel['requested']} requested -> {len(data)} kept + {len(rejected)} rejected"
    f" (reconciled: {funnel['reconciled']})"
)
print(rejected.groupby(["stage", "reason"]).size().rename("rows").to_string(), "\n")

print("tokens per sample:")
print(data.groupby("domain")["num_tokens"].describe().round(1).to_string())
counts, edges = np.histogram(data["num_tokens"], bins=10)
for n, low, high in zip(counts, edges[:-1], edges[1:], strict=True):
    print(f"  {low:6.0f} - {high:<6.0f} {'#' * round(40 * n / max(1, counts.max())):<40} {n}")

# pass_rate: the share of a kept sample's attempts that passed verification.
print("\npass rate of the kept samples:")
print(data.groupby("domain")["pass_rate"].agg(["mean", "min"]).round(3).to_string())
print("\nattempt verdicts:")
print(pd.crosstab(attempts["domain"], attempts["verdict"]).to_string(), "\n")

tok = load_tokenizer(manifest["tokenizer"]["name"])
if tok.files_hash != manifest["tokenizer"]["sha256"]:
    print("warning: this tokenizer's files differ from the ones the run used\n")
for _, row in data.sort_values("id").groupby("domain").head(1).iterrows():
    ids, mask = row["input_ids"], row["loss_mask"]  # int32 and int8 NumPy arrays
    print(f"--- {row['id']}: {len(ids)} tokens, {mask.sum()} in the loss; decoded:")
    print(tok.decode(ids))
    print("--- the part the loss is computed on (loss_mask == 1):")
    print(tok.decode(ids[mask == 1]), "\n")

# With tokens.pack: fixed-length sequences; cu_seqlens marks where each sample starts.
if (out / "packed").is_dir():
    packed = pd.read_parquet(out / "packed")
    fill = packed["num_tokens"].sum() / (len(packed) * len(packed["input_ids"].iloc[0]))
    print(
        f"packed: {len(packed)} sequences of {packed['num_samples'].sum()} samples, fill {fill:.3f}"
    )
    first = packed.iloc[0]
    print("first sequence:", list(first["sample_ids"]), "boundaries", first["cu_seqlens"].tolist())
