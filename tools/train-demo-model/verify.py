"""Checks model.py against the official `rwkv` package (RWKV_x070) on random weights.

python tools/train-demo-model/verify.py [--d 192 --layers 4]
Prints the max abs errors of logits and of every state tensor (one-token-at-a-time and sequence modes),
and of the chunked WKV against the step-by-step loop. Fails if any exceeds 1e-5.
"""
import argparse
import os
import sys
import tempfile

os.environ["RWKV_V7_ON"] = "1"
os.environ.setdefault("RWKV_JIT_ON", "1")
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import RWKV7, wkv_chunked, wkv_loop, HEAD_SIZE  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=192)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=300)
    ap.add_argument("--T", type=int, default=37)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    # chunked WKV vs loop (with gradients)
    B, T, H, N = 2, 45, 2, HEAD_SIZE
    C = H * N
    g = lambda: torch.randn(B, T, C)
    r, k, v = g(), g() * 0.3, g()
    logw = -0.606531 * torch.sigmoid(g() * 2)
    kk = torch.nn.functional.normalize(g().view(B, T, H, N), dim=-1).view(B, T, C)
    a = torch.sigmoid(g())
    S0 = torch.randn(B, H, N, N) * 0.1
    y1, s1 = wkv_chunked(r, logw, k, v, -kk, kk * a, S0, H, N)
    y2, s2 = wkv_loop(r, logw, k, v, -kk, kk * a, S0, H, N)
    e_wkv = max((y1 - y2).abs().max().item(), (s1 - s2).abs().max().item())
    print(f"chunked WKV vs loop: max err {e_wkv:.2e}")

    m = RWKV7(args.vocab, args.d, args.layers)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.add_(torch.randn_like(p) * (0.3 if p.dim() < 2 else 0.3 / max(p.shape) ** 0.5))
    m.eval()
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "rand")
    torch.save(sd, path + ".pth")
    from rwkv.model import RWKV
    ref = RWKV(model=path, strategy="cpu fp32")

    toks = torch.randint(1, args.vocab, (args.T,)).tolist()
    with torch.no_grad():
        logits, st = m(torch.tensor([toks]), return_state=True)
    logits = logits[0]
    # sequence mode (whole prompt at once, full output)
    out_seq, st_seq = ref.forward(toks, None, full_output=True)
    # one token at a time
    state = None
    outs = []
    for t in toks:
        o, state = ref.forward([t], state)
        outs.append(o.clone())
    out_one = torch.stack(outs)

    def state_err(ref_state):
        e = 0.0
        for i in range(args.layers):
            e = max(e, (ref_state[3 * i + 0] - st[i][0][0]).abs().max().item(),
                    (ref_state[3 * i + 1] - st[i][1][0]).abs().max().item(),
                    (ref_state[3 * i + 2] - st[i][2][0]).abs().max().item())
        return e

    e1 = (out_seq - logits).abs().max().item()
    e2 = (out_one - logits).abs().max().item()
    e3, e4 = state_err(st_seq), state_err(state)
    scale = logits.abs().max().item()
    print(f"d{args.d} L{args.layers} T={args.T}: max |logit| {scale:.3f}")
    print(f"logits  sequence mode: {e1:.2e}   one-token mode: {e2:.2e}")
    print(f"states  sequence mode: {e3:.2e}   one-token mode: {e4:.2e}")
    ok = max(e_wkv, e1, e2, e3, e4) < 1e-5
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
