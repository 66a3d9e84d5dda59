/* augment.c: per-sample augmentation fused with normalization. Random crop with zero padding
   (torchvision RandomCrop(size, padding=pad): pad by `pad` zero pixels, crop back to H x W at a
   uniform offset, i.e. out(y, x) = in(y + oy, x + ox) with oy, ox in [-pad, pad] and pixel value
   0 outside), then horizontal flip with p = 0.5, then x = (pixel / 255 - mean[c]) / std[c] (a
   padded pixel therefore becomes -mean/std, as in torchvision). The random draws come from the
   splitmix64 stream keyed by (seed, "aug", epoch, sample index) only. */
#include "data/data_internal.h"

#include <string.h>

sq_aug sq_augment_draw(uint64_t seed, int epoch, int index, int pad, int flip)
{
    sq_aug a = {0, 0, 0};
    uint64_t s = sq_drng_key(seed, SQ_DRNG_TAG_AUG, (uint64_t)(uint32_t)epoch,
                             (uint64_t)(uint32_t)index);
    if (pad > 0) {
        a.oy = (int)sq_drng_below(&s, (uint32_t)(2 * pad + 1)) - pad;
        a.ox = (int)sq_drng_below(&s, (uint32_t)(2 * pad + 1)) - pad;
    }
    if (flip) a.flip = (int)(sq_drng_next(&s) >> 63);
    return a;
}

void sq_norm_lut(const sq_dataset *ds, float *lut)
{
    for (int c = 0; c < ds->c; c++)
        for (int v = 0; v < 256; v++)
            lut[c * 256 + v] = ((float)v / 255.0f - ds->mean[c]) / ds->std[c];
}

void sq_augment_sample(const uint8_t *img, int c, int h, int w, sq_aug a, const float *lut,
                       float *out)
{
    for (int ch = 0; ch < c; ch++) {
        const uint8_t *src = img + (size_t)ch * h * w;
        const float *tab = lut + ch * 256;
        float *dst = out + (size_t)ch * h * w;
        if (a.oy == 0 && a.ox == 0 && !a.flip) {
            for (int i = 0; i < h * w; i++) dst[i] = tab[src[i]];
            continue;
        }
        for (int y = 0; y < h; y++) {
            int sy = y + a.oy;
            float *row = dst + (size_t)y * w;
            if (sy < 0 || sy >= h) {
                for (int x = 0; x < w; x++) row[x] = tab[0];
                continue;
            }
            const uint8_t *srow = src + (size_t)sy * w;
            for (int x = 0; x < w; x++) {
                int sx = (a.flip ? w - 1 - x : x) + a.ox;
                row[x] = (sx >= 0 && sx < w) ? tab[srow[sx]] : tab[0];
            }
        }
    }
}
