#!/usr/bin/env python3
"""Writes Tests/NetworkTests/Fixtures/tflite/: the TFLite interpreter's own results for the two
bundled models on three real images, so the Swift graph executor can be checked against them.

Dev-only dependency: ai_edge_litert (the TFLite interpreter). PIL is not available in the dev
python, so images are decoded and resized by tools/dev/dev_images.py (PNG in numpy + zlib, JPEG by
the system libjpeg with default settings, bilinear resize as documented in manifest.json). The
resized inputs are stored as lossless PNG: the Swift side reads them as they are and needs to
reproduce neither the JPEG decoder nor the resize.

Per image:
  deeplab  input-512-<image>.png (512x512 RGB, fed as the uint8 input), argmax-128-<image>.png:
           argmax over the 32 channels of the interpreter's logits tensor (t199, 1x128x128x32,
           before the model's own upsampling), greyscale PNG of class ids 0..31 (ties: lowest id);
           argmax-512-<image>.png: the model's complete output (its resize, then ARG_MAX).
  fastdepth input-224-<image>.png, depth-224-<image>.npy: the interpreter's output in metres
           (uint8 × output scale), float16 224x224.

Usage: python3 tools/dev/make_tflite_fixtures.py
"""
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import dev_images  # noqa: E402

SHARED = os.environ.get("SEMFUSE_SHARED_DIR", os.path.join(os.path.dirname(REPO), "shared"))
OUT = os.path.join(REPO, "Tests/NetworkTests/Fixtures/tflite")
IMAGES = [("nyu-000464", "nyuv2/000464.png"),
          ("7scenes-000000", "7scenes-redkitchen/frame-000000.color.jpg"),
          ("7scenes-000300", "7scenes-redkitchen/frame-000300.color.jpg")]
DEEPLAB = "deeplabv3_mnv2_ade20k_uint8.tflite"
FASTDEPTH = "fast_depth_224.tflite"


def md5(path):
    return hashlib.md5(open(path, "rb").read()).hexdigest()


def interpreter(path):
    from ai_edge_litert.interpreter import Interpreter
    interp = Interpreter(model_path=path, experimental_preserve_all_tensors=True, num_threads=2)
    interp.allocate_tensors()
    return interp


def tensor_named(interp, name):
    for d in interp.get_tensor_details():
        if d["name"] == name:
            return d
    raise KeyError(name)


def feed(interp, image, size, key):
    """Resizes `image` to size x size, stores that input as a lossless PNG fixture and runs the
    interpreter on it; returns the PNG's file name."""
    pixels = dev_images.resize_bilinear(image, size, size)
    input_file = f"input-{size}-{key}.png"
    dev_images.write_png(os.path.join(OUT, input_file), pixels)
    interp.set_tensor(interp.get_input_details()[0]["index"], pixels[None])
    interp.invoke()
    return input_file


def main():
    os.makedirs(OUT, exist_ok=True)
    weights = os.path.join(SHARED, "data/weights")
    deeplab, fastdepth = interpreter(os.path.join(weights, DEEPLAB)), interpreter(os.path.join(weights, FASTDEPTH))
    logits = tensor_named(deeplab, "logits/semantic/BiasAdd")
    fixtures = []
    for key, relative in IMAGES:
        source = os.path.join(SHARED, "data", relative)
        image = dev_images.read_image(source)
        made = (f"{relative} ({image.shape[1]}x{image.shape[0]}, md5 {md5(source)}) decoded "
                f"({'PNG' if relative.endswith('.png') else 'libjpeg, default settings, JCS_RGB'}), "
                f"resized to {{size}}x{{size}} ignoring the aspect ratio: {dev_images.RESIZE_DESCRIPTION}")

        input_file = feed(deeplab, image, 512, key)
        q = deeplab.get_tensor(logits["index"])[0]  # uint8, one per-tensor scale: argmax of q = argmax of logits
        classes = q.argmax(axis=-1).astype(np.uint8)
        output_file = f"argmax-128-{key}.png"
        dev_images.write_png(os.path.join(OUT, output_file), classes)
        # The model's complete output: its own bilinear resize of the uint8 logits to 512x512,
        # then ARG_MAX (what a user of the interpreter gets).
        full = deeplab.get_tensor(deeplab.get_output_details()[0]["index"])[0].astype(np.uint8)
        full_file = f"argmax-512-{key}.png"
        dev_images.write_png(os.path.join(OUT, full_file), full)
        fixtures.append({"model": "deeplabv3-mnv2-ade20k", "tflite": DEEPLAB, "image": key,
                         "input": input_file, "input_size": [512, 512], "input_made": made.format(size=512),
                         "output": output_file,
                         "output_is": "argmax over the 32 channels of the interpreter's logits tensor "
                                      f"t{logits['index']} 'logits/semantic/BiasAdd' (1x128x128x32), "
                                      "class ids 0..31 as an 8-bit greyscale PNG, ties to the lowest id",
                         "full_output": full_file,
                         "full_output_is": "the model's own output (its bilinear resize of the logits to "
                                           "512x512, then ARG_MAX), class ids as an 8-bit greyscale PNG"})

        input_file = feed(fastdepth, image, 224, key)
        out = fastdepth.get_output_details()[0]
        scale, zp = out["quantization"]
        depth = (fastdepth.get_tensor(out["index"])[0, :, :, 0].astype(np.float32) - zp) * scale
        output_file = f"depth-224-{key}.npy"
        np.save(os.path.join(OUT, output_file), depth.astype(np.float16))
        fixtures.append({"model": "fastdepth-nyu", "tflite": FASTDEPTH, "image": key,
                         "input": input_file, "input_size": [224, 224], "input_made": made.format(size=224),
                         "output": output_file,
                         "output_is": f"the interpreter's output in metres ((uint8 - {zp}) x {scale}), "
                                      "float16 224x224"})
        print(f"{key}: deeplab classes {np.unique(classes).tolist()}, depth {depth.min():.2f}..{depth.max():.2f} m")
    manifest = {"generator": "tools/dev/make_tflite_fixtures.py",
                "interpreter": "ai_edge_litert Interpreter (default XNNPACK delegate), 2 threads",
                "inputs": "8-bit RGB PNGs, fed unchanged as the models' uint8 input tensors",
                "fixtures": fixtures}
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, n)) for n in os.listdir(OUT))
    print(f"{OUT}: {len(os.listdir(OUT))} files, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
