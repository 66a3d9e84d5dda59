/* model_open.c: a model file by path, whichever kind it is: an sqakd checkpoint (safetensors) or an
   ONNX file, imported on the fly (docs/onnx.md). Every command that takes a teacher or a model
   path goes through here, so an .onnx file is accepted wherever a checkpoint is. */
#include "sqakd/checkpoint.h"
#include "sqakd/import.h"
#include <stdio.h>
#include <string.h>

static void meta_of_import(const sq_imported *imp, sq_ckpt_meta *meta)
{
    memset(meta, 0, sizeof *meta);
    snprintf(meta->arch, sizeof meta->arch, "graph");
    meta->in_c = imp->m->in_c; meta->in_h = imp->m->in_h; meta->in_w = imp->m->in_w;
    meta->classes = imp->m->classes;
    memcpy(meta->mean, imp->mean, sizeof meta->mean);
    memcpy(meta->std, imp->std, sizeof meta->std);
    snprintf(meta->role, sizeof meta->role, "teacher");
    meta->q.kind = SQ_QUANT_NONE;
}

sq_status sq_model_read_meta(const char *path, const sq_import_opts *io, sq_ckpt_meta *meta)
{
    if (!sq_is_onnx_path(path)) return sq_ckpt_read_meta(path, meta);
    sq_imported imp;
    sq_status st = sq_onnx_import(path, io, &imp);
    if (st) return st;
    meta_of_import(&imp, meta);
    sq_imported_free(&imp);
    return SQ_OK;
}

sq_status sq_model_open(const char *path, const sq_import_opts *io, const sq_backend *be, int batch,
                        int with_grad, sq_model **out, sq_ckpt_meta *meta)
{
    *out = NULL;
    if (!sq_is_onnx_path(path)) return sq_ckpt_open_model(path, be, batch, with_grad, out, meta);
    sq_imported imp;
    sq_status st = sq_onnx_import(path, io, &imp);
    if (st) return st;
    if (imp.ninputs > 1) {
        char pb[256];
        sq_set_error("%s has %d inputs; sqakd trains and evaluates image classifiers of one input ('sqakd infer' "
                     "runs it)", sq_printable(path, pb, sizeof pb), imp.ninputs);
        sq_imported_free(&imp);
        return SQ_EARG;
    }
    meta_of_import(&imp, meta);
    sq_model *m = imp.m;
    if ((st = sq_model_set_quant(m, &meta->q)) || (st = sq_model_setup(m, be, batch, with_grad)) ||
        (st = sq_imported_load(&imp, m))) {
        sq_imported_free(&imp);
        return st;
    }
    imp.m = NULL;
    sq_imported_free(&imp);
    *out = m;
    return SQ_OK;
}
