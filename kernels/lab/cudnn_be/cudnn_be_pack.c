/* cudnn_be_pack.c: the variant packs of the backend-API convolutions (cudnn_be.c), one per
   (variant, pointers, workspace), built on first use and kept in an open-addressing table. A
   model's buffers do not move, so a step builds none after its first. Freed pointers leave stale
   entries behind; an entry is only pointers, so a later buffer at the same address, which a
   caller hands to the same plan only when its shape matches, reuses it correctly. Past 65536
   packs (pointers that keep changing) the table starts over. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cudnn_be_int.h"

typedef struct pack_entry {
    const be_variant *v;
    const void *p[3], *ws;
    cudnnBackendDescriptor_t pack;
} pack_entry;

static pack_entry *g_packs;
static size_t g_npacks, g_cap_packs; /* open addressing, capacity a power of two */

static size_t pack_hash(const be_variant *v, const void *const p[3], const void *ws)
{
    uint64_t hsh = (uint64_t)(uintptr_t)v * 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 3; i++) hsh = (hsh ^ (uint64_t)(uintptr_t)p[i]) * 0xBF58476D1CE4E5B9ull;
    hsh = (hsh ^ (uint64_t)(uintptr_t)ws) * 0x94D049BB133111EBull;
    return (size_t)(hsh ^ (hsh >> 31));
}

static pack_entry *pack_slot(pack_entry *tab, size_t cap, const be_variant *v,
                             const void *const p[3], const void *ws)
{
    size_t i = pack_hash(v, p, ws) & (cap - 1);
    for (;; i = (i + 1) & (cap - 1)) {
        pack_entry *e = &tab[i];
        if (!e->v || (e->v == v && e->p[0] == p[0] && e->p[1] == p[1] && e->p[2] == p[2] &&
                      e->ws == ws))
            return e;
    }
}

static int packs_grow(void)
{
    size_t ncap = g_cap_packs ? 2 * g_cap_packs : 256;
    pack_entry *nt = calloc(ncap, sizeof *nt);
    if (!nt) return 0;
    for (size_t i = 0; i < g_cap_packs; i++)
        if (g_packs[i].v) *pack_slot(nt, ncap, g_packs[i].v, g_packs[i].p, g_packs[i].ws) = g_packs[i];
    free(g_packs);
    g_packs = nt;
    g_cap_packs = ncap;
    return 1;
}

/* the packs of a variant go with it (its address may be reused by a later plan) */
void lab_be_packs_drop(const be_variant *v)
{
    if (!g_cap_packs) return;
    int any = 0;
    for (size_t i = 0; i < g_cap_packs; i++)
        if (g_packs[i].v == v) {
            cudnnBackendDestroyDescriptor(g_packs[i].pack);
            g_packs[i].v = NULL;
            any = 1;
        }
    if (!any) return;
    /* rehash what is left, since removals break the probe chains */
    pack_entry *old = g_packs;
    size_t cap = g_cap_packs;
    g_packs = calloc(cap, sizeof *g_packs);
    if (!g_packs) { /* cannot rehash: drop every pack (rebuilt on use) */
        for (size_t i = 0; i < cap; i++)
            if (old[i].v) cudnnBackendDestroyDescriptor(old[i].pack);
        free(old);
        g_cap_packs = g_npacks = 0;
        return;
    }
    g_npacks = 0;
    for (size_t i = 0; i < cap; i++)
        if (old[i].v) {
            *pack_slot(g_packs, cap, old[i].v, old[i].p, old[i].ws) = old[i];
            g_npacks++;
        }
    free(old);
}

cudnnBackendDescriptor_t lab_be_pack_get(const be_variant *v, const void *const p[3], void *ws,
                                        cudnnStatus_t *st)
{
    *st = CUDNN_STATUS_SUCCESS;
    if (g_cap_packs) {
        pack_entry *e = pack_slot(g_packs, g_cap_packs, v, p, ws);
        if (e->v) return e->pack;
    }
    if (g_npacks >= ((size_t)1 << 16)) { /* pointers that keep changing: start over */
        for (size_t i = 0; i < g_cap_packs; i++)
            if (g_packs[i].v) cudnnBackendDestroyDescriptor(g_packs[i].pack);
        memset(g_packs, 0, g_cap_packs * sizeof *g_packs);
        g_npacks = 0;
    }
    if (2 * (g_npacks + 1) > g_cap_packs && !packs_grow()) {
        *st = CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED;
        return NULL;
    }
    cudnnBackendDescriptor_t pack = NULL;
    int64_t uids[3] = {BE_UID_X, BE_UID_W, BE_UID_Y};
    void *ptrs[3] = {(void *)p[0], (void *)p[1], (void *)p[2]};
    if ((*st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &pack)) != 0)
        return NULL;
    if ((*st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS,
                                        CUDNN_TYPE_INT64, 3, uids)) != 0 ||
        (*st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                        CUDNN_TYPE_VOID_PTR, 3, ptrs)) != 0 ||
        (*st = cudnnBackendSetAttribute(pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE,
                                        CUDNN_TYPE_VOID_PTR, 1, &ws)) != 0 ||
        (*st = cudnnBackendFinalize(pack)) != 0) {
        cudnnBackendDestroyDescriptor(pack);
        return NULL;
    }
    pack_entry *e = pack_slot(g_packs, g_cap_packs, v, p, ws);
    *e = (pack_entry){v, {p[0], p[1], p[2]}, ws, pack};
    g_npacks++;
    return pack;
}


size_t lab_be_pack_count(void) { return g_npacks; }
