/* fuzz_sweep_config.c: libFuzzer harness of the sweep configuration reader (sq_sweep_load, what
   'sqakd sweep --config FILE' and a resumed sweep's DIR/sweep.json go through): the input is the
   JSON file. A configuration that loads is expanded into its tasks and written back with
   sq_sweep_to_json, which must be valid JSON. Errors go to stderr (the CLI's sq_cli_fail). */
#include "fuzz_util.h"
#include "cli/sweep.h"

static sq_sweep_task tasks[SQ_SWEEP_MAX_TASKS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[600];
    fz_path(path, sizeof path, "sweep.json");
    fz_write(path, data, size);
    sq_sweep sw;
    sq_sweep_defaults(&sw);
    if (sq_sweep_load("sweep", path, &sw) == 0) {
        int ngroups = 0, n = sq_sweep_tasks(&sw, tasks, &ngroups);
        if (n != sw.nq * sw.nbits * sw.nseeds || n > SQ_SWEEP_MAX_TASKS || ngroups > n) abort();
        for (int t = 0; t < 2; t++) {
            sq_jbuf b;
            sq_jbuf_init(&b);
            sq_sweep_to_json(&sw, t, &b);
            sq_json *v;
            if (sq_json_parse(b.buf, b.len, &v, NULL) != SQ_OK) abort();
            sq_json_free(v);
            sq_jbuf_free(&b);
        }
    }
    unlink(path);
    return 0;
}
