"""Image I/O for the dev scripts without PIL (not installed in the dev python): PNG read/write in
numpy + zlib, JPEG decode through the system libjpeg (the same library and default settings as
Sources/CJPEG: JCS_RGB output, libjpeg's default DCT and fancy upsampling) via a tiny C helper
compiled on first use, and the bilinear resize the fixtures document.
"""
import os
import struct
import subprocess
import tempfile
import zlib

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    """8-bit, non-interlaced greyscale/RGB/RGBA PNG → uint8 HxWxC (C = 1, 3 or 4)."""
    blob = open(path, "rb").read()
    assert blob[:8] == PNG_SIGNATURE, f"{path}: not a PNG"
    pos, idat, header = 8, [], None
    while pos < len(blob):
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        body = blob[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 6: 4}.get(colour)
    assert depth == 8 and channels and interlace == 0, f"{path}: unsupported PNG (depth {depth}, colour {colour})"
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(height, 1 + width * channels)
    out = np.zeros((height, width * channels), np.int32)
    prev = np.zeros(width * channels, np.int32)
    bpp = channels
    for y in range(height):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            row = line
        elif f == 1:  # Sub: running sum per channel
            row = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif f == 2:
            row = (line + prev) % 256
        elif f == 3:
            row = np.zeros_like(line)
            for x in range(0, width * bpp, bpp):
                left = row[x - bpp:x] if x else 0
                row[x:x + bpp] = (line[x:x + bpp] + (left + prev[x:x + bpp]) // 2) % 256
        elif f == 4:
            row = np.zeros_like(line)
            for x in range(0, width * bpp, bpp):
                a = row[x - bpp:x] if x else np.zeros(bpp, np.int32)
                b = prev[x:x + bpp]
                c = prev[x - bpp:x] if x else np.zeros(bpp, np.int32)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
                row[x:x + bpp] = (line[x:x + bpp] + pred) % 256
        else:
            raise ValueError(f"{path}: bad PNG filter {f}")
        out[y] = row
        prev = row
    return out.astype(np.uint8).reshape(height, width, channels)


def write_png(path, image):
    """uint8 HxW or HxWxC (1, 3, 4) → PNG, per-row filter chosen by the minimum-sum heuristic."""
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    height, width, channels = image.shape
    colour = {1: 0, 3: 2, 4: 6}[channels]
    x = image.reshape(height, width * channels).astype(np.int32)
    up = np.vstack([np.zeros((1, x.shape[1]), np.int32), x[:-1]])
    left = np.hstack([np.zeros((height, channels), np.int32), x[:, :-channels]])
    upleft = np.hstack([np.zeros((height, channels), np.int32), up[:, :-channels]])
    p = left + up - upleft
    pa, pb, pc = abs(p - left), abs(p - up), abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    candidates = [x, x - left, x - up, x - (left + up) // 2, x - paeth]
    candidates = [c % 256 for c in candidates]
    cost = np.stack([np.minimum(c, 256 - c).sum(axis=1) for c in candidates])
    best = cost.argmin(axis=0)
    rows = np.stack(candidates)[best, np.arange(height)]
    raw = np.hstack([best[:, None], rows]).astype(np.uint8).tobytes()

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    data = (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)


JPEG_HELPER = r"""
#include <stdio.h>
#include <jpeglib.h>
int main(int argc, char **argv) {
    struct jpeg_decompress_struct info; struct jpeg_error_mgr err;
    FILE *f = fopen(argv[1], "rb"); if (!f) return 2;
    info.err = jpeg_std_error(&err);
    jpeg_create_decompress(&info); jpeg_stdio_src(&info, f); jpeg_read_header(&info, TRUE);
    info.out_color_space = JCS_RGB; jpeg_start_decompress(&info);
    printf("%u %u\n", info.output_width, info.output_height);
    unsigned char row[65536 * 3]; JSAMPROW rows[1] = {row};
    while (info.output_scanline < info.output_height) {
        jpeg_read_scanlines(&info, rows, 1); fwrite(row, 3, info.output_width, stdout);
    }
    jpeg_finish_decompress(&info); jpeg_destroy_decompress(&info); fclose(f); return 0;
}
"""


def read_jpeg(path):
    """JPEG → uint8 HxWx3 through libjpeg (cc and libjpeg62-turbo-dev needed)."""
    helper = os.path.join(tempfile.gettempdir(), f"semfuse-djpeg-{os.getuid()}")
    if not os.path.exists(helper):
        source = helper + ".c"
        with open(source, "w") as f:
            f.write(JPEG_HELPER)
        subprocess.run(["cc", "-O2", "-o", helper, source, "-ljpeg"], check=True)
    out = subprocess.run([helper, path], check=True, capture_output=True).stdout
    first = out.index(b"\n")
    width, height = map(int, out[:first].split())
    return np.frombuffer(out[first + 1:], np.uint8).reshape(height, width, 3)


def read_image(path):
    image = read_png(path) if path.lower().endswith(".png") else read_jpeg(path)
    return image[:, :, :3] if image.shape[2] >= 3 else np.repeat(image, 3, axis=2)


RESIZE_DESCRIPTION = ("bilinear, half-pixel centres (src = (dst + 0.5) * in / out - 0.5, clamped to the edge "
                      "pixels), no antialiasing, computed in float64 and rounded half up to uint8 "
                      "(tools/dev/dev_images.py resize_bilinear)")


def resize_bilinear(image, height, width):
    """uint8 HxWxC → uint8 height x width x C, as RESIZE_DESCRIPTION says."""
    src = image.astype(np.float64)
    h, w = image.shape[:2]

    def axis(n_out, n_in):
        s = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(s).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, s - i0
    y0, y1, fy = axis(height, h)
    x0, x1, fx = axis(width, w)
    top = src[y0][:, x0] * (1 - fx)[None, :, None] + src[y0][:, x1] * fx[None, :, None]
    bottom = src[y1][:, x0] * (1 - fx)[None, :, None] + src[y1][:, x1] * fx[None, :, None]
    out = top * (1 - fy)[:, None, None] + bottom * fy[:, None, None]
    return np.floor(out + 0.5).clip(0, 255).astype(np.uint8)
