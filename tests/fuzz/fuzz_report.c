/* fuzz_report.c: libFuzzer harness of result.json reading as 'sqakd report DIR' does it
   (load_row in cmd_report.c is static, so the harness runs sq_cmd_report --quiet): the input is
   DIR/tasks/x/result.json of a fresh sweep directory; a result that loads is also turned into
   report.md, report.csv and the figures (SVG, PDF, PNG). Errors go to stderr (the CLI's sq_cli_fail). */
#include "fuzz_util.h"
#include "cli/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[600], task[700], path[800];
    fz_path(dir, sizeof dir, "sweep");
    snprintf(task, sizeof task, "%s/tasks/x", dir);
    if (fz_mkdirs(task)) abort();
    snprintf(path, sizeof path, "%s/result.json", task);
    fz_write(path, data, size);
    char *argv[] = {"report", "--quiet", dir, NULL};
    int rc = sq_cmd_report(3, argv);
    if (rc != 0 && rc != 2) abort();
    fz_rmtree(dir);
    return 0;
}
