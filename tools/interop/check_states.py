"""State interop with the official `rwkv` package (BlinkDL, RWKV_x070) and the web-rwkv layout.

Run by Tests/RWKVTests/StateInteropTests.swift (through the venv scripts/test.sh makes) as
    python tools/interop/check_states.py MODEL.pth WORKDIR
WORKDIR holds what rwkv-edit wrote:
  ours.pth              our .pth time_state export (own zip/pickle writer) of state S
  ours-full.safetensors S with its shifts, native keys (layerN.att_x_prev, layerN.wkv, layerN.ffn_x_prev)
  probe.json            {"continue": [token ids fed after the state], "prompt": [tokens that made S]}
and this script writes WORKDIR/official.safetensors:
  runner.logits         logits after `continue`, from the .pth loaded as RWKV-Runner loads a state
                        (time_state into state[3i+1] unchanged for x070, shifts zero)
  full.logits           logits after `continue` from S with its shifts put into the package's state list
  full.layerI.wkv       the package's state after that continuation, per layer
  own.wkv.layerI        the package's own state after `prompt` (what it reads back from theirs.*)
and two files written the way the peers write them, for rwkv-edit to import:
  theirs.pth            torch.save of {blocks.i.att.time_state: bf16 (H,N,N)} like RWKV-PEFT's output
  theirs.state          web-rwkv layout: safetensors, F16, each head transposed to [key][value]
"""
import json
import os
import sys

os.environ["RWKV_V7_ON"] = "1"  # before importing rwkv.model
os.environ.setdefault("RWKV_JIT_ON", "0")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402


def main():
    model_path, work = sys.argv[1], sys.argv[2]
    from rwkv.model import RWKV
    torch.set_num_threads(1)
    model = RWKV(model=model_path[:-4], strategy="cpu fp32")
    n_layer = model.args.n_layer
    probe = json.load(open(os.path.join(work, "probe.json")))
    cont = [int(t) for t in probe["continue"]]

    # 1. Our .pth, read by torch itself (weights_only: only tensors and their rebuild functions).
    ours = torch.load(os.path.join(work, "ours.pth"), map_location="cpu", weights_only=True)
    assert sorted(ours.keys()) == sorted(f"blocks.{i}.att.time_state" for i in range(n_layer)), sorted(ours.keys())
    for k, v in ours.items():
        assert v.dtype == torch.float32 and v.dim() == 3 and v.is_contiguous(), (k, v.dtype, v.shape)

    # 2. Loaded as RWKV-Runner loads a state-tuned file: att_x_prev and ffn_x_prev zero, time_state as is.
    state = model.generate_zero_state()
    for i in range(n_layer):
        state[i * 3 + 1] = ours[f"blocks.{i}.att.time_state"].to(torch.float).contiguous()
    runner_logits = None
    for t in cont:
        runner_logits, state = model.forward_one(t, state)

    # 3. The full state put into the package's state list, then continued.
    full = load_file(os.path.join(work, "ours-full.safetensors"))
    state = model.generate_zero_state()
    for i in range(n_layer):
        state[i * 3 + 0] = full[f"layer{i}.att_x_prev"].to(state[i * 3 + 0].dtype)
        state[i * 3 + 1] = full[f"layer{i}.wkv"].to(torch.float).contiguous()
        state[i * 3 + 2] = full[f"layer{i}.ffn_x_prev"].to(state[i * 3 + 2].dtype)
    full_logits = None
    for t in cont:
        full_logits, state = model.forward_one(t, state)

    out = {"runner.logits": runner_logits.float().contiguous(), "full.logits": full_logits.float().contiguous()}
    for i in range(n_layer):
        out[f"full.layer{i}.wkv"] = state[i * 3 + 1].float().contiguous()

    # 4. The package's own state after the prompt, written the way the peers write it.
    state = model.generate_zero_state()
    for t in probe["prompt"]:
        _, state = model.forward_one(int(t), state)
    own = {f"blocks.{i}.att.time_state": state[i * 3 + 1].to(torch.bfloat16).contiguous() for i in range(n_layer)}
    torch.save(own, os.path.join(work, "theirs.pth"))
    # web-rwkv's converter stores F16; the state's heads are key-major there.
    web = {f"blocks.{i}.att.time_state": state[i * 3 + 1].transpose(1, 2).to(torch.float16).contiguous() for i in range(n_layer)}
    save_file(web, os.path.join(work, "theirs.state"))
    for i in range(n_layer):
        out[f"own.wkv.layer{i}"] = state[i * 3 + 1].float().contiguous()

    save_file(out, os.path.join(work, "official.safetensors"))
    print("ok")


if __name__ == "__main__":
    main()
