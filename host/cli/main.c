/* main.c: the sqakd executable; the command line itself is sq_cli_main (cli_main.c, in the library). */
#include "cli.h"
#include "sqakd/dist.h"
#include <stdlib.h>

/* the world size a launcher gave this process: OpenMPI's mpirun, srun with PMIx or PMI-2 (the
   library reads no environment; the executable tells it) */
static int launched_world(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"};
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_RANK")) return 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return 1;
}

int main(int argc, char **argv)
{
    sq_cli_set_launched(launched_world());
    int rc = sq_cli_main(argc, argv);
    sq_dist_finish(rc);
    return rc;
}
