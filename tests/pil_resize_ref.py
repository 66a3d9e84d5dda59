#!/usr/bin/python3
"""pil_resize_ref.py OUT: the reference of tests/test_data_pil.c.

Writes a few images with PIL into OUT/img/ (RGB, greyscale, grey + alpha, palette, RGBA PNG; RGB,
greyscale and CMYK JPEG; sizes that exercise down- and upscaling, odd crops, both orientations),
and, for every target size in OUT/targets.txt ("H W" per line: fixed targets and each image's own
size), what torchvision makes of each image the way an ImageFolder pipeline does:

    Compose([Resize(min(H, W)), CenterCrop((H, W))])(Image.open(path).convert("RGB"))

as raw (3, H, W) uint8 in OUT/exp/<file>.<H>x<W>.raw. At the image's own size that is
convert("RGB") alone (Resize and CenterCrop are identities), so the colour conversions are
checked too.
"""
import os
import sys

import numpy as np
from PIL import Image
import torchvision.transforms as T

TARGETS = [(32, 32), (24, 40), (40, 24), (17, 23), (96, 96), (64, 64)]


def images(rng):
    """(file name, PIL image, save options): smooth gradients plus noise, so that every filter tap
    matters"""
    def rgb(h, w):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([x * 255.0 / max(w - 1, 1), y * 255.0 / max(h - 1, 1), (x + y) * 127.0 / max(h + w - 2, 1)], -1)
        return np.clip(base + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)

    out = []
    out.append(("a_rgb_37x53.png", Image.fromarray(rgb(37, 53)), {}))
    out.append(("b_rgb_64x48.jpg", Image.fromarray(rgb(64, 48)), {"quality": 90}))
    out.append(("c_grey_50x50.jpg", Image.fromarray(rgb(50, 50)).convert("L"), {"quality": 85}))
    la = Image.fromarray(rgb(30, 70)).convert("LA")
    out.append(("d_greyalpha_30x70.png", la, {}))
    out.append(("e_palette_41x29.png", Image.fromarray(rgb(41, 29)).quantize(colors=37), {}))
    rgba = np.concatenate([rgb(33, 33), rng.integers(0, 256, (33, 33, 1), dtype=np.uint8)], -1)
    out.append(("f_rgba_33x33.png", Image.fromarray(rgba, "RGBA"), {}))
    out.append(("g_cmyk_45x60.jpg", Image.fromarray(rgb(45, 60)).convert("CMYK"), {"quality": 92}))
    out.append(("h_rgb_300x200.png", Image.fromarray(rgb(300, 200)), {}))
    out.append(("i_grey_19x97.png", Image.fromarray(rgb(19, 97)).convert("L"), {}))
    return out


def main():
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "img"), exist_ok=True)
    os.makedirs(os.path.join(out, "exp"), exist_ok=True)
    rng = np.random.default_rng(19)
    files = []
    for name, im, opts in images(rng):
        path = os.path.join(out, "img", name)
        im.save(path, **opts)
        files.append(path)
    targets = list(TARGETS)
    for path in files:
        w, h = Image.open(path).size
        if (h, w) not in targets:
            targets.append((h, w))
    for th, tw in targets:
        tf = T.Compose([T.Resize(min(th, tw)), T.CenterCrop((th, tw))])
        for path in files:
            got = np.asarray(tf(Image.open(path).convert("RGB")), dtype=np.uint8)
            assert got.shape == (th, tw, 3), got.shape
            dst = os.path.join(out, "exp", "%s.%dx%d.raw" % (os.path.basename(path), th, tw))
            with open(dst, "wb") as f:
                f.write(np.ascontiguousarray(got.transpose(2, 0, 1)).tobytes())
    with open(os.path.join(out, "targets.txt"), "w") as f:
        for th, tw in targets:
            f.write("%d %d\n" % (th, tw))


if __name__ == "__main__":
    main()
