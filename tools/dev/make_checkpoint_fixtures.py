#!/usr/bin/env python3
"""Developer tool (needs torch): writes the small checkpoint fixtures the converter tests read,
in torch's zip format and its legacy format, plus the values torch itself reports for them.
Not used by the tests or the product; kept so the fixtures can be regenerated.

    python tools/dev/make_checkpoint_fixtures.py Tests/NetworkTests/Fixtures
"""
import collections
import json
import os
import sys

import torch

out = sys.argv[1]
torch.manual_seed(0)
base = torch.randn(4, 6)
state = collections.OrderedDict()
state["plain.weight"] = torch.randn(2, 3)
state["transposed.weight"] = base.t()[1:4]          # non-contiguous view with an offset
state["shared.slice"] = base[2:, 1:5]                # shares storage with the one above
state["double.values"] = torch.randn(5, dtype=torch.float64)
state["half.values"] = torch.randn(2, 2).half()
state["bn.num_batches_tracked"] = torch.tensor(7)    # int64 scalar: must be skipped
state["param"] = torch.nn.Parameter(torch.randn(3))
checkpoint = {"state_dict": state, "epoch": 3, "best_val": 0.5, "note": "fixture"}
torch.save(checkpoint, os.path.join(out, "fixture-zip.ckpt"))
torch.save(checkpoint, os.path.join(out, "fixture-legacy.ckpt"), _use_new_zipfile_serialization=False)
expected = {k: {"shape": list(v.shape), "values": v.detach().double().flatten().tolist()}
            for k, v in state.items() if v.is_floating_point()}
with open(os.path.join(out, "fixture-expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
print("wrote", sorted(os.listdir(out)))
