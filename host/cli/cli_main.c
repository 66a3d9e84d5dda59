/* cli_main.c: the sqakd command line as a library function (sq_cli_main): dispatches to one file
   per subcommand. The executable (main.c) and the Python package (python/) both call it. */
#include "cli.h"
#include "sq_version.h"
#include "sqakd/backend.h"
#include "sqakd/dist.h"
#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "sqakd: label-free quantization-aware distillation (SQAKD) of image classifiers\n\n"
            "usage: sqakd COMMAND [options]   (sqakd COMMAND --help for each; sqakd --version)\n\n"
            "  train     train a full-precision model with labels (a teacher)\n"
            "  distill   train a low-bit student from a teacher (a checkpoint or an .onnx file) without labels (SQAKD)\n"
            "  sweep     many students (quantizers x bit-widths x seeds) from one teacher, locally or on Slurm\n"
            "  report    a sweep's results as a Markdown table, a CSV and a PNG plot\n"
            "  eval      accuracy / teacher agreement of a checkpoint or ONNX model\n"
            "  info      metadata, tensors and graph of a checkpoint or ONNX model\n"
            "  import    convert an ONNX model (your own CNN) into an sqakd checkpoint\n"
            "  infer     run a checkpoint or ONNX model on a tensor (.npy / .pb) and write its outputs as .npy\n"
            "  export    a checkpoint as ONNX (plain or QDQ) or as packed integer codes\n"
            "  models    the built-in architectures and their parameter counts\n"
            "  bench     'bench step' (images/s of one training step) or 'bench kernels'\n");
}

static void version(void)
{
    const char *cuda = sq_backend_cuda_build();
    printf("sqakd %s (git %s)\nbackends: %s%s%s\ndata-parallel runs: %s\n", SQ_VERSION, SQ_GIT_COMMIT,
           sq_backend_cpu_build(), cuda ? ", " : "", cuda ? cuda : " (built without CUDA)", sq_dist_build());
}

int sq_cli_main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *c = argv[1];
    if (!strcmp(c, "--version") || !strcmp(c, "version")) {
        version();
        return 0;
    }
    if (!strcmp(c, "train")) return sq_cmd_train(argc - 1, argv + 1);
    if (!strcmp(c, "distill")) return sq_cmd_distill(argc - 1, argv + 1);
    if (!strcmp(c, "sweep")) return sq_cmd_sweep(argc - 1, argv + 1);
    if (!strcmp(c, "report")) return sq_cmd_report(argc - 1, argv + 1);
    if (!strcmp(c, "eval")) return sq_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(c, "info")) return sq_cmd_info(argc - 1, argv + 1);
    if (!strcmp(c, "import")) return sq_cmd_import(argc - 1, argv + 1);
    if (!strcmp(c, "infer")) return sq_cmd_infer(argc - 1, argv + 1);
    if (!strcmp(c, "export")) return sq_cmd_export(argc - 1, argv + 1);
    if (!strcmp(c, "models")) return sq_cmd_models(argc - 1, argv + 1);
    if (!strcmp(c, "bench")) return sq_cmd_bench(argc - 1, argv + 1);
    fprintf(stderr, "sqakd: unknown command '%s' (run 'sqakd --help')\n", c);
    return 2;
}
