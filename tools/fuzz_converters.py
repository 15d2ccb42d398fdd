#!/usr/bin/env python3
"""Developer tool (issue 9): coverage-guided fuzzing of the two converters with atheris
(`pip install atheris`; not needed by the product or its tests). Run through scripts/fuzz.sh:

    scripts/fuzz.sh convert-tflite 600        # or convert-checkpoint, or python for both

    python3 tools/fuzz_converters.py convert-tflite CORPUS... [libFuzzer flags]

Each input is written to a file and converted exactly as a user runs the tool (`main([in, out])`).
The contract checked: a valid file converts (exit 0), anything else ends in the tool's one-line
`error: …` (exit 1). Any exception escaping `main` (a traceback for the user), a crash or a hang
is a finding.
"""
import contextlib
import hashlib
import io
import os
import sys
import tempfile
import traceback

import atheris

with atheris.instrument_imports():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import convert_checkpoint
    import convert_tflite

TOOLS = {"convert-tflite": (convert_tflite, ".tflite"), "convert-checkpoint": (convert_checkpoint, ".ckpt")}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TOOLS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(TOOLS)} [corpus…] [libFuzzer flags]")
    module, suffix = TOOLS[sys.argv[1]]
    scratch = tempfile.mkdtemp(prefix="semfuse-atheris-")
    source, output = os.path.join(scratch, "input" + suffix), os.path.join(scratch, "output.safetensors")

    collect = os.environ.get("SEMFUSE_FUZZ_COLLECT")
    seen = set()

    def check(data):
        with open(source, "wb") as f:
            f.write(data)
        if os.path.exists(output):
            os.remove(output)
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            status = module.main([source, output])
        if status not in (0, 1):
            raise AssertionError(f"exit status {status!r}: {sink.getvalue()[-500:]}")
        if status == 1 and not sink.getvalue().startswith("error: "):
            raise AssertionError(f"failure without an 'error:' line: {sink.getvalue()[-500:]}")

    def one_input(data):
        if not collect:
            return check(data)
        # Collect mode (SEMFUSE_FUZZ_COLLECT=folder): one input per distinct exception (type and
        # innermost frame) is saved and the run goes on, so one run finds more than the first.
        try:
            check(data)
        except Exception as e:
            frame = traceback.extract_tb(e.__traceback__)[-1]
            signature = f"{type(e).__name__} {os.path.basename(frame.filename)}:{frame.lineno}"
            if signature not in seen:
                seen.add(signature)
                name = hashlib.sha1(signature.encode()).hexdigest()[:12]
                with open(os.path.join(collect, f"finding-{name}"), "wb") as f:
                    f.write(data)
                print(f"FINDING {signature}: {e!s:.200} -> {collect}/finding-{name}", flush=True)

    atheris.Setup([sys.argv[0]] + sys.argv[2:], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
