#!/usr/bin/env python3
"""The llama.cpp anchor: both engines on the same random-weight GGUF files, interleaved, one table.

    python3 tools/anchor/anchor.py [--sizes 0.1b,0.4b] [--types f16,bf16,q8_0,q4_k_m,q5_k_m,q6_k] [--rounds 3]

Builds llama-bench and llama-quantize from the llama.cpp vendored in PyPI's llama-cpp-python 0.3.36
sdist (`pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36`) with cmake, under
~/.cache/rwkv-edit-anchor (RWKV_EDIT_ANCHOR_CACHE), once; nothing of llama.cpp enters the repository.
Makes an f16 (and bf16) random-weight file per size with tools/anchor/make_random_gguf.py (World
vocabulary from ../shared/fixtures, which llama.cpp needs to load a model), quantises the others with
llama-quantize, then per round runs `llama-bench -p 64 -n 32 -t 2` and `rwkv-edit bench --model FILE`
(64-token prompt, 32 decoded) on each file in turn and prints tok/s ranges and the per-round ratios:
median and range (a round's two runs are back to back, so their ratio is the least disturbed by a
busy machine). Needs cmake, a C++
compiler (cmake from PyPI when the system has none) and a built `.build/release/rwkv-edit`
(swift build -c release).
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("RWKV_EDIT_ANCHOR_CACHE", os.path.expanduser("~/.cache/rwkv-edit-anchor"))
VERSION = "0.3.36"
VOCAB = os.path.join(ROOT, "..", "shared", "fixtures", "world-vocab", "rwkv_vocab_v20230424.txt")
QUANT_FTYPE = {"q8_0": "Q8_0", "q4_k_m": "Q4_K_M", "q5_k_m": "Q5_K_M", "q6_k": "Q6_K", "q4_0": "Q4_0",
               "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1"}


def run(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, **kw)


def venv_python():
    venv = os.path.join(CACHE, "venv")
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        run([sys.executable, "-m", "venv", venv])
        run([py, "-m", "pip", "install", "-q", "gguf==0.19.0", "numpy"])
    return py


def cmake_binary(py):
    """The system's cmake, else PyPI's `cmake` package in the anchor's venv."""
    found = shutil.which("cmake")
    if found:
        return found
    local = os.path.join(os.path.dirname(py), "cmake")
    if not os.path.exists(local):
        run([py, "-m", "pip", "install", "-q", "cmake"])
    return local


def build_llama(py):
    bins = os.path.join(CACHE, "build", "bin")
    if all(os.path.exists(os.path.join(bins, b)) for b in ("llama-bench", "llama-quantize")):
        return bins
    sdist_dir = os.path.join(CACHE, "sdist")
    if not glob.glob(os.path.join(sdist_dir, f"llama_cpp_python-{VERSION}.tar.gz")):
        run([py, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
             f"llama-cpp-python=={VERSION}", "-d", sdist_dir])
    src = os.path.join(CACHE, f"llama_cpp_python-{VERSION}")
    if not os.path.isdir(src):
        with tarfile.open(glob.glob(os.path.join(sdist_dir, f"llama_cpp_python-{VERSION}.tar.gz"))[0]) as t:
            t.extractall(CACHE)
    cmake = cmake_binary(py)
    run([cmake, "-S", os.path.join(src, "vendor", "llama.cpp"), "-B", os.path.join(CACHE, "build"),
         "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
         "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=OFF", "-DBUILD_SHARED_LIBS=OFF"])
    run([cmake, "--build", os.path.join(CACHE, "build"), "--target", "llama-bench", "llama-quantize",
         "-j", str(os.cpu_count() or 2)])
    return bins


def make_models(py, bins, sizes, types):
    files = {}
    mdir = os.path.join(CACHE, "models")
    os.makedirs(mdir, exist_ok=True)
    for size in sizes:
        base = os.path.join(mdir, f"rwkv7-{size}-f16.gguf")
        for t in types:
            out = os.path.join(mdir, f"rwkv7-{size}-{t}.gguf")
            if not os.path.exists(out):
                if t in ("f16", "bf16", "f32"):
                    run([py, os.path.join(ROOT, "tools", "anchor", "make_random_gguf.py"), "--size", size,
                         "--type", t, "--vocab", VOCAB, "--out", out])
                else:
                    if not os.path.exists(base):
                        run([py, os.path.join(ROOT, "tools", "anchor", "make_random_gguf.py"), "--size", size,
                             "--type", "f16", "--vocab", VOCAB, "--out", base])
                    run([os.path.join(bins, "llama-quantize"), base, out, QUANT_FTYPE[t]],
                        stdout=subprocess.DEVNULL)
            files[(size, t)] = out
    return files


def llama_bench(bins, path, threads):
    out = subprocess.run([os.path.join(bins, "llama-bench"), "-m", path, "-p", "64", "-n", "32", "-t", str(threads),
                          "-o", "json"], check=True, capture_output=True, text=True).stdout
    res = json.loads(out)

    # The best of llama-bench's repetitions (samples_ts), as rwkv-edit bench reports its best of three:
    # on a shared machine an average mostly measures the other processes.
    def best(r):
        return max(r.get("samples_ts") or [r["avg_ts"]])
    pp = next(best(r) for r in res if r["n_prompt"] > 0 and r["n_gen"] == 0)
    tg = next(best(r) for r in res if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return pp, tg


def ours(path, threads):
    out = subprocess.run([os.path.join(ROOT, ".build", "release", "rwkv-edit"), "bench", "--model", path,
                          "--threads", str(threads), "--json"], check=True, capture_output=True, text=True).stdout
    j = json.loads(out.strip().splitlines()[-1])
    return j["prefill_tok_s"], j["decode_tok_s"], j["bandwidth_gb_s"], j["kernels"]


def rng(v):
    return f"{min(v):.1f}" if len(v) == 1 or max(v) - min(v) < 0.05 else f"{min(v):.1f}–{max(v):.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0.1b,0.4b")
    ap.add_argument("--types", default="f16,bf16,q8_0,q4_k_m,q5_k_m,q6_k")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(CACHE, exist_ok=True)
    py = venv_python()
    bins = build_llama(py)
    files = make_models(py, bins, a.sizes.split(","), a.types.split(","))
    if a.rounds < 1:   # --rounds 0 only builds llama.cpp and makes the files
        for path in files.values():
            print(path)
        return
    res = {k: {"lpp": [], "ltg": [], "opp": [], "otg": [], "bw": []} for k in files}
    kernels = "?"
    for r in range(a.rounds):
        for k, path in files.items():
            lpp, ltg = llama_bench(bins, path, a.threads)
            opp, otg, bw, kernels = ours(path, a.threads)
            for n, v in (("lpp", lpp), ("ltg", ltg), ("opp", opp), ("otg", otg), ("bw", bw)):
                res[k][n].append(v)
            print(f"round {r + 1} {k[0]} {k[1]}: llama.cpp {lpp:.1f}/{ltg:.1f}, rwkv-edit {opp:.1f}/{otg:.1f} tok/s",
                  file=sys.stderr, flush=True)
    bw = [b for v in res.values() for b in v["bw"]]
    print(f"{os.cpu_count()} cores, {a.threads} threads, rwkv-edit kernels {kernels}, read bandwidth {rng(bw)} GB/s; "
          f"llama.cpp {VERSION} (llama-cpp-python's vendored copy), llama-bench -p 64 -n 32 (best of its 5 "
          f"repetitions), rwkv-edit bench (best of 3); {a.rounds} rounds")
    print("| file | MB | llama.cpp pp / tg tok/s | rwkv-edit pp / tg tok/s | ratio pp / tg: median (range) |")
    print("|---|---|---|---|---|")
    for (size, t), v in res.items():
        rp = [o / l for o, l in zip(v["opp"], v["lpp"])]
        rt = [o / l for o, l in zip(v["otg"], v["ltg"])]
        mb = os.path.getsize(files[(size, t)]) / 1e6
        print(f"| {size} {t} | {mb:.0f} | {rng(v['lpp'])} / {rng(v['ltg'])} | {rng(v['opp'])} / {rng(v['otg'])} | "
              f"{statistics.median(rp):.2f}× ({min(rp):.2f}–{max(rp):.2f}) / "
              f"{statistics.median(rt):.2f}× ({min(rt):.2f}–{max(rt):.2f}) |")


if __name__ == "__main__":
    sys.exit(main())
