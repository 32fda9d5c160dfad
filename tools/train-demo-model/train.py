"""Trains the rwkv-edit demo model on the synthetic fact world (CPU, one thread, fp32). Seeded and resumable.

  new run:  OMP_WAIT_POLICY=PASSIVE python tools/train-demo-model/train.py --d 192 --layers 4 --minutes 120
  resume:   OMP_WAIT_POLICY=PASSIVE python tools/train-demo-model/train.py --resume --minutes 120
  speed:    OMP_WAIT_POLICY=PASSIVE python tools/train-demo-model/train.py --d 256 --layers 4 --bench 60

The batch at step s is generated from random.Random(seed * 1000003 + s), so the data position is the step.
Checkpoint (model + optimizer + step + RNG + phase) -> tools/train-demo-model/ckpt/latest.pt, written atomically
every --ckpt-minutes and at the end. Metrics -> tools/train-demo-model/ckpt/metrics.log (and stdout).
Curriculum: phase 0 = mixed corpus; phase 1 (binding-heavy mix) starts once the quick eval's 1-entity
top-1 accuracy reaches --switch-acc (or with --phase 1).
"""
import argparse
import json
import math
import os
import random
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
import evalsets  # noqa: E402
from model import RWKV7  # noqa: E402
from vocab import Tokenizer  # noqa: E402

CKPT_DIR = os.path.join(HERE, "ckpt")
CKPT = os.path.join(CKPT_DIR, "latest.pt")


def make_batch(tok, seed, step, B, T, phase, answer_weight):
    """B rows of T+1 tokens, each filled with whole documents (token 0 before each), padded with 0 (weight 0)."""
    rng = random.Random(seed * 1000003 + step)
    p_bind = 0.15 if phase == 0 else 0.7
    X = torch.zeros(B, T + 1, dtype=torch.long)
    W = torch.zeros(B, T + 1)
    for b in range(B):
        row, wt = [0], [0.0]
        while True:
            segs = corpus.gen_document(rng, binding_heavy=rng.random() < p_bind)
            ids, ws = [], []
            for text, is_ans in segs:
                t = tok.encode(text)
                ids += t
                ws += [answer_weight if is_ans else 1.0] * len(t)
            ids.append(0)
            ws.append(1.0)
            if len(ids) > T:
                continue  # too long for a row: draw another
            if len(row) + len(ids) > T + 1:
                break
            row += ids
            wt += ws
        X[b, :len(row)] = torch.tensor(row)
        W[b, :len(wt)] = torch.tensor(wt)
    # target at position i is X[i+1] with weight W[i+1]
    return X[:, :-1], X[:, 1:], W[:, 1:]


def save_ckpt(state, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def log(msg, fh):
    line = time.strftime("%Y-%m-%d %H:%M:%S ") + msg
    print(line, flush=True)
    if fh:
        fh.write(line + "\n")
        fh.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d", type=int, default=192)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--T", type=int, default=256)
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--lr-final", type=float, default=None, help="cosine-decay to this over --decay-steps")
    ap.add_argument("--decay-steps", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--answer-weight", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--minutes", type=float, default=120)
    ap.add_argument("--ckpt-minutes", type=float, default=4)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--switch-acc", type=float, default=0.9)
    ap.add_argument("--phase", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--ckpt", default=CKPT, help="checkpoint path (metrics.log goes beside it)")
    ap.add_argument("--bench", type=float, default=0, help="run this many seconds, print tokens/s, save nothing")
    args = ap.parse_args()

    tok = Tokenizer()
    ckpt_dir = os.path.dirname(os.path.abspath(args.ckpt))
    os.makedirs(ckpt_dir, exist_ok=True)
    fh = None if args.bench else open(os.path.join(ckpt_dir, "metrics.log"), "a")
    ck = None
    if args.resume:
        ck = torch.load(args.ckpt, map_location="cpu", weights_only=False)
        saved = ck["args"]
        for k in ("d", "layers", "T", "B", "seed", "answer_weight", "warmup"):
            setattr(args, k, saved[k])
    torch.manual_seed(args.seed)
    model = RWKV7(tok.vocab_size, args.d, args.layers)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99), eps=1e-8)
    step, tokens, phase, train_secs = 0, 0, 0, 0.0
    if ck is not None:
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, tokens, phase, train_secs = ck["step"], ck["tokens"], ck["phase"], ck["train_secs"]
        torch.set_rng_state(ck["torch_rng"])
        random.setstate(ck["py_rng"])
        log(f"resumed from {args.ckpt} at step {step} ({tokens / 1e6:.2f}M tokens, phase {phase})", fh)
    if args.phase is not None:
        phase = args.phase
    log(f"model d{args.d} L{args.layers} heads {args.d // 64} params {model.n_params() / 1e6:.2f}M vocab {tok.vocab_size} "
        f"batch {args.B}x{args.T} lr {args.lr} threads {torch.get_num_threads()} args {json.dumps(vars(args))}", fh)

    def lr_at(s):
        if s < args.warmup:
            return args.lr * (s + 1) / args.warmup
        if args.lr_final is not None and args.decay_steps > 0:
            t0 = ck["step"] if ck is not None else 0
            f = min(1.0, (s - t0) / args.decay_steps)
            return args.lr_final + 0.5 * (args.lr - args.lr_final) * (1 + math.cos(math.pi * f))
        return args.lr

    def checkpoint():
        save_ckpt({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "tokens": tokens,
                   "phase": phase, "train_secs": train_secs, "torch_rng": torch.get_rng_state(),
                   "py_rng": random.getstate(), "args": vars(args),
                   "config": {"vocab_size": tok.vocab_size, "n_embd": args.d, "n_layer": args.layers}}, args.ckpt)
        log(f"checkpoint step {step} -> {args.ckpt}", fh)

    t_start = time.time()
    t_ckpt = time.time()
    t_win, tok_win, loss_win, n_win = time.time(), 0, 0.0, 0
    limit = args.bench if args.bench else args.minutes * 60
    model.train()
    while time.time() - t_start < limit:
        t0 = time.time()
        x, y, w = make_batch(tok, args.seed, step, args.B, args.T, phase, args.answer_weight)
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step)
        logits = model(x)
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
        loss = (ce * w.reshape(-1)).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        n = args.B * args.T
        tokens += n
        tok_win += n
        loss_win += loss.item()
        n_win += 1
        train_secs += time.time() - t0
        if step % 20 == 0 or args.bench:
            dt = time.time() - t_win
            log(f"step {step} tokens {tokens / 1e6:.3f}M loss {loss_win / n_win:.4f} tok/s {tok_win / dt:.0f} "
                f"lr {lr_at(step):.2e} phase {phase}", fh)
            t_win, tok_win, loss_win, n_win = time.time(), 0, 0.0, 0
        if not args.bench and step % args.eval_every == 0:
            model.eval()
            acc = evalsets.quick_eval(model, tok)
            model.train()
            log("eval step %d tokens %.3fM %s" % (step, tokens / 1e6, " ".join(f"[{k}]={v:.2f}" for k, v in acc.items())), fh)
            if phase == 0 and args.phase is None and acc["1 entity"] >= args.switch_acc:
                phase = 1
                log(f"curriculum: switching to binding-heavy mix (phase 1) at step {step}", fh)
            t_win, tok_win = time.time(), 0
        if not args.bench and time.time() - t_ckpt > args.ckpt_minutes * 60:
            checkpoint()
            t_ckpt = time.time()
    if args.bench:
        log(f"bench: {tokens} tokens in {train_secs:.1f}s of steps = {tokens / train_secs:.0f} tok/s", fh)
    else:
        checkpoint()


if __name__ == "__main__":
    main()
