/* sweep_config.c: the sweep configuration (defaults, list flags, JSON load and save) and its
   tasks and groups. */
#include "sweep.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void sq_sweep_defaults(sq_sweep *sw)
{
    memset(sw, 0, sizeof *sw);
    sw->epochs = 10;
    sw->batch = 128;
    sw->threads = sq_cpus_available();
    sw->group_size = 4;
    sw->ntasks = 1;
    sw->lr_model = 1e-3f;
    sw->lr_quant = 1e-5f;
    sw->alpha = 1;
    sw->temperature = 4;
    snprintf(sw->loss, sizeof sw->loss, "kl");
    sw->squat_weight = 1;
    snprintf(sw->device, sizeof sw->device, "auto");
    snprintf(sw->time, sizeof sw->time, "01:00:00");
}

const char *sq_sweep_bad_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return "no control characters (newline, tab, escape, ...)";
    return NULL;
}

const char *sq_sweep_bad_partition(const char *s)
{
    static const char *what = "partition names of letters, digits, '.', '_' and '-', several separated by commas";
    int name = 0;   /* characters in the current name */
    for (const char *p = s; *p; p++) {
        if (isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-') name++;
        else if (*p == ',' && name) name = 0;
        else return what;
    }
    return *s && !name ? what : NULL;
}

/* a run of 1 to 9 digits at *p; advances *p */
static int digits(const char **p)
{
    int k = 0;
    while (isdigit((unsigned char)**p) && k < 10) (*p)++, k++;
    return k >= 1 && k <= 9;
}

const char *sq_sweep_bad_time(const char *s)
{
    static const char *what = "a Slurm time: minutes, minutes:seconds, hours:minutes:seconds, days-hours, "
                              "days-hours:minutes, days-hours:minutes:seconds, or UNLIMITED";
    if (!strcasecmp(s, "UNLIMITED") || !strcasecmp(s, "INFINITE")) return NULL;
    const char *p = s;
    if (!digits(&p)) return what;
    if (*p == '-') {   /* days-hours[:minutes[:seconds]] */
        p++;
        if (!digits(&p)) return what;
    }
    for (int colons = 0; *p == ':' && colons < 2; colons++) {
        p++;
        if (!digits(&p)) return what;
    }
    return *p ? what : NULL;
}

void sq_sweep_show(const char *s, char *dst, size_t n)
{
    size_t len = 0;
    if (!n) return;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char one[8];
        int k = *p >= 0x20 && *p < 0x7f && *p != '\\' ? snprintf(one, sizeof one, "%c", *p)
                                                      : snprintf(one, sizeof one, "\\x%02x", *p);
        if (len + k + 4 > n) {   /* room for "..." and the NUL */
            if (n >= 4) memcpy(dst + (len < n - 4 ? len : n - 4), "...", 4);
            else dst[0] = 0;
            return;
        }
        memcpy(dst + len, one, k);
        len += k;
    }
    dst[len] = 0;
}

/* splits a comma-separated list into at most max trimmed, non-empty items (in place) */
static int split_list(char *s, char **items, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t)) t++;
        char *e = t + strlen(t);
        while (e > t && isspace((unsigned char)e[-1])) *--e = 0;
        if (!*t) continue;
        if (n == max) return -1;
        items[n++] = t;
    }
    return n;
}

int sq_sweep_parse_quantizers(const char *cmd, const char *list, sq_sweep *sw)
{
    char buf[1024], *it[SQ_SWEEP_MAX_Q];
    if (strlen(list) >= sizeof buf) return sq_cli_fail(cmd, "--quantizers: at most %zu bytes, got %zu", sizeof buf - 1, strlen(list));
    memcpy(buf, list, strlen(list) + 1);
    int n = split_list(buf, it, SQ_SWEEP_MAX_Q);
    if (n <= 0) return sq_cli_fail(cmd, "--quantizers: give 1 to %d of ewgs, pact, lsq, dorefa, got '%s'", SQ_SWEEP_MAX_Q, list);
    for (int i = 0; i < n; i++) {
        int k = sq_quant_kind_parse(it[i]);
        if (k <= 0) return sq_cli_fail(cmd, "--quantizers: unknown quantizer '%s' (ewgs, pact, lsq or dorefa)", it[i]);
        for (int j = 0; j < i; j++)
            if (sw->quant[j] == (sq_quant_kind)k) return sq_cli_fail(cmd, "--quantizers: '%s' is listed twice", it[i]);
        sw->quant[i] = (sq_quant_kind)k;
    }
    sw->nq = n;
    return 0;
}

int sq_sweep_parse_bits(const char *cmd, const char *list, sq_sweep *sw)
{
    char buf[1024], *it[SQ_SWEEP_MAX_BITS];
    if (strlen(list) >= sizeof buf) return sq_cli_fail(cmd, "--bits: at most %zu bytes, got %zu", sizeof buf - 1, strlen(list));
    memcpy(buf, list, strlen(list) + 1);
    int n = split_list(buf, it, SQ_SWEEP_MAX_BITS);
    if (n <= 0) return sq_cli_fail(cmd, "--bits: give 1 to %d bit-widths (wWaA or B, e.g. 1,2,w4a8), got '%s'", SQ_SWEEP_MAX_BITS, list);
    for (int i = 0; i < n; i++) {
        if (sq_bits_parse(it[i], &sw->wbits[i], &sw->abits[i]))
            return sq_cli_fail(cmd, "--bits: '%s' is not wWaA or B with 1..8 bits (e.g. w4a4 or 4)", it[i]);
        for (int j = 0; j < i; j++)
            if (sw->wbits[j] == sw->wbits[i] && sw->abits[j] == sw->abits[i])
                return sq_cli_fail(cmd, "--bits: w%da%d is listed twice", sw->wbits[i], sw->abits[i]);
    }
    sw->nbits = n;
    return 0;
}

int sq_sweep_parse_seeds(const char *cmd, const char *list, sq_sweep *sw)
{
    char buf[1024], *it[SQ_SWEEP_MAX_SEEDS];
    if (strlen(list) >= sizeof buf) return sq_cli_fail(cmd, "--seeds: at most %zu bytes, got %zu", sizeof buf - 1, strlen(list));
    memcpy(buf, list, strlen(list) + 1);
    int n = split_list(buf, it, SQ_SWEEP_MAX_SEEDS);
    if (n <= 0) return sq_cli_fail(cmd, "--seeds: give 1 to %d non-negative integers, got '%s'", SQ_SWEEP_MAX_SEEDS, list);
    for (int i = 0; i < n; i++) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(it[i], &end, 10);
        if (!isdigit((unsigned char)it[i][0]) || *end || errno)
            return sq_cli_fail(cmd, "--seeds: '%s' is not a non-negative integer", it[i]);
        if (v > 9007199254740991ull) /* sweep.json keeps seeds as JSON numbers: exact up to 2^53 */
            return sq_cli_fail(cmd, "--seeds: %llu is above 2^53 - 1 = 9007199254740991, the largest seed sweep.json "
                               "stores exactly", v);
        for (int j = 0; j < i; j++)
            if (sw->seeds[j] == v) return sq_cli_fail(cmd, "--seeds: %llu is listed twice", v);
        sw->seeds[i] = v;
    }
    sw->nseeds = n;
    return 0;
}

/* a string value that C sees whole: no NUL (\u0000) inside, no control characters */
static int plain_str(const sq_json *v)
{
    return v->type == SQ_JSON_STR && strlen(v->str) == v->len && !sq_sweep_bad_text(v->str);
}

/* a JSON list (array of strings/numbers, or one comma-separated string) as one comma-separated
   string; -1 when it is not one, or does not fit whole (an item over 63 bytes, the list over n - 1) */
static int json_list(const sq_json *v, char *dst, size_t n)
{
    if (v->type == SQ_JSON_STR) {
        if (!plain_str(v) || v->len >= n) return -1;
        memcpy(dst, v->str, v->len + 1);
        return 0;
    }
    if (v->type != SQ_JSON_ARR) return -1;
    size_t len = 0;
    dst[0] = 0;
    for (int i = 0; i < v->n; i++) {
        const sq_json *e = &v->items[i];
        char item[64];
        int64_t iv;
        if (e->type == SQ_JSON_STR && plain_str(e) && e->len < sizeof item)
            memcpy(item, e->str, e->len + 1);
        else if (e->type == SQ_JSON_NUM && sq_json_int(e, &iv) && iv >= 0) snprintf(item, sizeof item, "%lld", (long long)iv);
        else return -1;
        size_t k = strlen(item) + (i > 0);
        if (len + k >= n) return -1;
        snprintf(dst + len, n - len, "%s%s", i ? "," : "", item);
        len += k;
    }
    return 0;
}

typedef enum { K_STR, K_INT, K_FLOAT, K_LIST } key_kind;

int sq_sweep_load(const char *cmd, const char *path, sq_sweep *sw)
{
    sq_json *root;
    if (sq_json_parse_file(path, &root)) return sq_cli_fail(cmd, "%s", sq_last_error());
    int rc = 0;
    if (root->type != SQ_JSON_OBJ) {
        rc = sq_cli_fail(cmd, "%s: the configuration must be a JSON object", path);
        goto done;
    }
    struct { const char *key; key_kind kind; void *dst; size_t cap; } keys[] = {
        {"model", K_STR, sw->model, sizeof sw->model}, {"data", K_STR, sw->data, sizeof sw->data},
        {"teacher", K_STR, sw->teacher, sizeof sw->teacher},
        {"train_teacher_epochs", K_INT, &sw->train_teacher_epochs, 0},
        {"quantizers", K_LIST, (void *)sq_sweep_parse_quantizers, 0},
        {"bits", K_LIST, (void *)sq_sweep_parse_bits, 0}, {"seeds", K_LIST, (void *)sq_sweep_parse_seeds, 0},
        {"epochs", K_INT, &sw->epochs, 0}, {"batch", K_INT, &sw->batch, 0}, {"threads", K_INT, &sw->threads, 0},
        {"max_steps", K_INT, &sw->max_steps, 0}, {"group_size", K_INT, &sw->group_size, 0},
        {"lr_model", K_FLOAT, &sw->lr_model, 0}, {"lr_quant", K_FLOAT, &sw->lr_quant, 0},
        {"alpha", K_FLOAT, &sw->alpha, 0}, {"temperature", K_FLOAT, &sw->temperature, 0},
        {"holdout", K_FLOAT, &sw->holdout, 0}, {"device", K_STR, sw->device, sizeof sw->device},
        {"augment", K_STR, sw->augment, sizeof sw->augment}, {"out", K_STR, sw->out, sizeof sw->out},
        {"resize", K_STR, sw->resize, sizeof sw->resize},
        {"partition", K_STR, sw->partition, sizeof sw->partition}, {"time", K_STR, sw->time, sizeof sw->time},
        {"gpus", K_INT, &sw->gpus, 0}, {"cpus_per_task", K_INT, &sw->cpus_per_task, 0},
        {"max_running", K_INT, &sw->max_running, 0}, {"tensorboard", K_INT, &sw->tensorboard, 0},
        {"loss", K_STR, sw->loss, sizeof sw->loss}, {"squat_weight", K_FLOAT, &sw->squat_weight, 0},
        {"squat_tap", K_STR, sw->squat_tap, sizeof sw->squat_tap},
        {"per_channel", K_INT, &sw->per_channel, 0},
        {"ntasks_per_group", K_INT, &sw->ntasks, 0},
    };
    for (int i = 0; i < root->n && !rc; i++) {
        const char *k = root->keys[i];
        const sq_json *v = &root->items[i];
        size_t j = 0;
        while (j < sizeof keys / sizeof keys[0] && strcmp(keys[j].key, k)) j++;
        if (j == sizeof keys / sizeof keys[0]) {
            rc = sq_cli_fail(cmd, "%s: unknown key \"%s\" at byte %zu", path, k, v->offset);
            break;
        }
        int64_t iv;
        char list[1024];
        switch (keys[j].kind) {
        case K_STR: {
            const char *bad = NULL;
            if (v->type != SQ_JSON_STR || v->len >= keys[j].cap)
                rc = sq_cli_fail(cmd, "%s: \"%s\" must be a string of under %zu bytes (byte %zu)", path, k, keys[j].cap, v->offset);
            else if (!plain_str(v))
                rc = sq_cli_fail(cmd, "%s: \"%s\" must have no control characters and no \\u0000 (byte %zu)", path, k,
                                 v->offset);
            else if ((!strcmp(k, "partition") && (bad = sq_sweep_bad_partition(v->str))) ||
                     (!strcmp(k, "time") && (bad = sq_sweep_bad_time(v->str)))) {
                char shown[96];
                sq_sweep_show(v->str, shown, sizeof shown);
                rc = sq_cli_fail(cmd, "%s: \"%s\" must be %s, got '%s' (byte %zu)", path, k, bad, shown, v->offset);
            } else memcpy(keys[j].dst, v->str, v->len + 1);
            break;
        }
        case K_INT:
            if (!sq_json_int(v, &iv) || iv < 0 || iv > 100000000)
                rc = sq_cli_fail(cmd, "%s: \"%s\" must be a non-negative integer (byte %zu)", path, k, v->offset);
            else *(int *)keys[j].dst = (int)iv;
            break;
        case K_FLOAT:
            if (v->type != SQ_JSON_NUM || !(v->num >= 0) || v->num > 1e6)
                rc = sq_cli_fail(cmd, "%s: \"%s\" must be a number >= 0 (byte %zu)", path, k, v->offset);
            else *(float *)keys[j].dst = (float)v->num;
            break;
        case K_LIST: {
            int (*parse)(const char *, const char *, sq_sweep *) = (int (*)(const char *, const char *, sq_sweep *))keys[j].dst;
            if (json_list(v, list, sizeof list))
                rc = sq_cli_fail(cmd, "%s: \"%s\" must be a list of strings (under 64 bytes each, no control "
                                 "characters) or numbers, under %zu bytes in all (byte %zu)", path, k, sizeof list, v->offset);
            else if (parse(cmd, list, sw))
                rc = 2;
            break;
        }
        }
    }
done:
    sq_json_free(root);
    return rc;
}

/* the shortest decimal that reads back as the same float (0.001, not 0.00100000005) */
static double short_float(float f)
{
    char buf[32];
    for (int p = 6; p < 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, f);
        if (strtof(buf, NULL) == f) return strtod(buf, NULL);
    }
    return f;
}

void sq_sweep_to_json(const sq_sweep *sw, int training_only, sq_jbuf *jb)
{
    char s[64];
    sq_jbuf_begin_obj(jb);
    sq_jbuf_kv_str(jb, "model", sw->model);
    sq_jbuf_kv_str(jb, "data", sw->data);
    sq_jbuf_kv_str(jb, "teacher", sw->teacher);
    sq_jbuf_kv_int(jb, "train_teacher_epochs", sw->train_teacher_epochs);
    if (!training_only) {
        sq_jbuf_key(jb, "quantizers");
        sq_jbuf_begin_arr(jb);
        for (int i = 0; i < sw->nq; i++) sq_jbuf_str(jb, sq_quant_kind_name(sw->quant[i]));
        sq_jbuf_end_arr(jb);
        sq_jbuf_key(jb, "bits");
        sq_jbuf_begin_arr(jb);
        for (int i = 0; i < sw->nbits; i++) {
            snprintf(s, sizeof s, "w%da%d", sw->wbits[i], sw->abits[i]);
            sq_jbuf_str(jb, s);
        }
        sq_jbuf_end_arr(jb);
        sq_jbuf_key(jb, "seeds");
        sq_jbuf_begin_arr(jb);
        for (int i = 0; i < sw->nseeds; i++) sq_jbuf_int(jb, (int64_t)sw->seeds[i]);
        sq_jbuf_end_arr(jb);
    }
    sq_jbuf_kv_int(jb, "epochs", sw->epochs);
    sq_jbuf_kv_int(jb, "batch", sw->batch);
    sq_jbuf_kv_int(jb, "max_steps", sw->max_steps);
    sq_jbuf_kv_num(jb, "lr_model", short_float(sw->lr_model));
    sq_jbuf_kv_num(jb, "lr_quant", short_float(sw->lr_quant));
    sq_jbuf_kv_num(jb, "alpha", short_float(sw->alpha));
    sq_jbuf_kv_num(jb, "temperature", short_float(sw->temperature));
    sq_jbuf_kv_num(jb, "holdout", short_float(sw->holdout));
    sq_jbuf_kv_str(jb, "augment", sw->augment);
    sq_jbuf_kv_str(jb, "resize", sw->resize);
    if (strcmp(sw->loss, "kl")) { /* written only when not the default: earlier sweeps' JSON stays as it was */
        sq_jbuf_kv_str(jb, "loss", sw->loss);
        sq_jbuf_kv_num(jb, "squat_weight", short_float(sw->squat_weight));
        sq_jbuf_kv_str(jb, "squat_tap", sw->squat_tap);
    }
    if (sw->per_channel) sq_jbuf_kv_int(jb, "per_channel", sw->per_channel);
    if (!training_only) {
        sq_jbuf_kv_int(jb, "threads", sw->threads);
        sq_jbuf_kv_str(jb, "device", sw->device);
        sq_jbuf_kv_int(jb, "group_size", sw->group_size);
        sq_jbuf_kv_str(jb, "out", sw->out);
        sq_jbuf_kv_str(jb, "partition", sw->partition);
        sq_jbuf_kv_str(jb, "time", sw->time);
        sq_jbuf_kv_int(jb, "gpus", sw->gpus);
        sq_jbuf_kv_int(jb, "cpus_per_task", sw->cpus_per_task);
        sq_jbuf_kv_int(jb, "max_running", sw->max_running);
        sq_jbuf_kv_int(jb, "ntasks_per_group", sw->ntasks);
        sq_jbuf_kv_int(jb, "tensorboard", sw->tensorboard);
    }
    sq_jbuf_end_obj(jb);
}

int sq_sweep_tasks(const sq_sweep *sw, sq_sweep_task *tasks, int *ngroups)
{
    int n = 0, g = 0, gs = sw->group_size > 0 ? sw->group_size : 1;
    for (int s = 0; s < sw->nseeds; s++) {
        int k = 0;
        for (int q = 0; q < sw->nq; q++)
            for (int b = 0; b < sw->nbits; b++, k++) {
                sq_sweep_task *t = &tasks[n++];
                t->q = q;
                t->b = b;
                t->s = s;
                t->group = g + k / gs;
                snprintf(t->id, sizeof t->id, "%s_w%da%d_s%llu", sq_quant_kind_name(sw->quant[q]), sw->wbits[b],
                         sw->abits[b], (unsigned long long)sw->seeds[s]);
            }
        g += (k + gs - 1) / gs;
    }
    *ngroups = g;
    return n;
}

void sq_sweep_task_path(const sq_sweep *sw, const char *id, const char *file, char *dst, size_t n)
{
    snprintf(dst, n, "%s/tasks/%s%s%s", sw->out, id, file ? "/" : "", file ? file : "");
}

int sq_sweep_task_done(const sq_sweep *sw, const char *id)
{
    char p[4096];
    sq_sweep_task_path(sw, id, "result.json", p, sizeof p);
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

void sq_sweep_teacher_ckpt(const sq_sweep *sw, char *dst, size_t n)
{
    if (sw->teacher[0]) snprintf(dst, n, "%s", sw->teacher);
    else sq_sweep_task_path(sw, "teacher", "best.safetensors", dst, n);
}
