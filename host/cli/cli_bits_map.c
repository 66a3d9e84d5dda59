/* cli_bits_map.c: --bits-map FILE for distill (issue 20 item 5): the file read and checked once
   (sq_bits_map_canonical), its canonical content recorded in the run configuration
   ("bits_map_json", beside the path) and in every checkpoint's metadata, and taken from the
   recorded configuration on --resume, so that a run does not depend on the file staying. */
#include "distill_common.h"
#include "sqakd/json.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQ_BITS_MAP_MAX (1 << 20)

int sq_cli_bits_map(const char *cmd, const sq_cli_common *c, const char *path, sq_quant_opts *q)
{
    const char *rec = c->recorded ? sq_json_str(sq_json_get(c->recorded, "bits_map_json")) : NULL;
    if (c->resume && rec) { /* the map the run was started with */
        if (sq_bits_map_canonical(rec, strlen(rec), "--resume: the recorded bits map", &q->bits_map))
            return sq_cli_fail(cmd, "%s", sq_last_error());
        return 0;
    }
    if (!path) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return sq_cli_fail(cmd, "--bits-map: cannot open %s: %s", path, strerror(errno));
    char *buf = sq_xmalloc(SQ_BITS_MAP_MAX + 1);
    size_t n = fread(buf, 1, SQ_BITS_MAP_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    int rc = 0;
    char what[4200];
    snprintf(what, sizeof what, "--bits-map %s", path);
    if (err) rc = sq_cli_fail(cmd, "--bits-map: cannot read %s", path);
    else if (n > SQ_BITS_MAP_MAX) rc = sq_cli_fail(cmd, "--bits-map: %s is larger than 1 MiB: not a bits map", path);
    else if (sq_bits_map_canonical(buf, n, what, &q->bits_map)) rc = sq_cli_fail(cmd, "%s", sq_last_error());
    free(buf);
    return rc;
}

void sq_cli_config_add_bits_map(sq_cli_common *c, const char *map)
{
    if (!map || !c->run_config) return;
    size_t len = strlen(c->run_config);
    while (len && c->run_config[len - 1] != '}') len--;
    if (!len) return;
    len--; /* before the closing brace */
    sq_jbuf b;
    sq_jbuf_init(&b);
    sq_jbuf_raw(&b, c->run_config, len);
    if (len && c->run_config[len - 1] != '{') sq_jbuf_raw(&b, ",", 1);
    sq_jbuf_raw(&b, "\"bits_map_json\":", 16);
    sq_jbuf_str(&b, map);
    sq_jbuf_raw(&b, "}", 1);
    free(c->run_config);
    c->run_config = strdup(sq_jbuf_cstr(&b));
    c->cfg.run_config = c->run_config;
    sq_jbuf_free(&b);
}
