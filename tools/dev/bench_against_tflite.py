#!/usr/bin/env python3
"""Times the bundled converted models in semfuse (`semfuse bench network --json`, float32 and/or
int8) against the reference TFLite interpreter (int8/uint8, XNNPACK) on the original .tflite
files, in the same run, alternating them so machine drift hits all alike.

Dev only: needs `pip install ai-edge-litert numpy` and a release build of semfuse.
Usage: python3 tools/dev/bench_against_tflite.py [--rounds 3] [--runs 15] [--precision float32|int8|both]
                                                 [--threads 1,2] [--exe .build/release/semfuse]
"""
import argparse, json, os, statistics, subprocess, sys, time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "weights")
MODELS = [  # (semfuse model, tflite file, native size)
    ("deeplab", "deeplabv3_mnv2_ade20k_uint8.tflite", (512, 512)),
    ("fastdepth", "fast_depth_224.tflite", (224, 224)),
]


def interpreter_ms(path, threads, runs):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path, num_threads=threads)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    x = (np.random.default_rng(0).random(inp["shape"]) * 255).astype(inp["dtype"])
    it.set_tensor(inp["index"], x)
    for _ in range(3):
        it.invoke()
    times = []
    for _ in range(runs):
        t = time.perf_counter(); it.invoke(); times.append((time.perf_counter() - t) * 1000)
    return times


def semfuse_ms(exe, model, size, threads, runs, precision):
    out = subprocess.run([exe, "bench", "network", "--model", model, "--size", f"{size[0]}x{size[1]}",
                          "--threads", str(threads), "--runs", str(runs), "--precision", precision, "--json"],
                         check=True, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "SEMFUSE_MODELS": os.path.join(ROOT, "Models")})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--precision", choices=["float32", "int8", "both"], default="float32")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--exe", default=os.path.join(ROOT, ".build", "release", "semfuse"))
    args = ap.parse_args()
    precisions = ["float32", "int8"] if args.precision == "both" else [args.precision]
    for model, tflite, size in MODELS:
        for threads in (int(t) for t in args.threads.split(",")):
            ours, theirs = {p: [] for p in precisions}, []
            for _ in range(args.rounds):
                theirs.append(statistics.median(interpreter_ms(os.path.join(SHARED, tflite), threads, args.runs)))
                for p in precisions:
                    ours[p].append(semfuse_ms(args.exe, model, size, threads, args.runs, p)["median_ms"])
            t = statistics.median(theirs)
            line = f"{model} {size[0]}x{size[1]} {threads} thread(s): TFLite int8 median {t:.1f} ms (rounds {', '.join(f'{v:.1f}' for v in theirs)})"
            for p in precisions:
                o = statistics.median(ours[p])
                line += f"; semfuse {p} median {o:.1f} ms (rounds {', '.join(f'{v:.1f}' for v in ours[p])}), ratio {o / t:.2f}x"
            print(line)


if __name__ == "__main__":
    sys.exit(main())
