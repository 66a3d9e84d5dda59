/* cmd_report.c: 'sqakd report DIR' — a sweep's results as a Markdown table, a CSV and a PNG plot. */
#include "cli.h"

int sq_cmd_report(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return sq_cli_fail("report", "not implemented yet");
}
