/* dist.h: the process group of a data-parallel run (host/dist, MPI). One process per device,
   started by mpirun or srun; rank and world size come from MPI. A process that is not started by
   a launcher never initialises MPI and runs alone (sq_dist_comm() is NULL). docs/scaling.md. */
#ifndef SQAKD_DIST_H
#define SQAKD_DIST_H

#include "sqakd/comm.h"
#include "sqakd/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when this build has MPI (mpi.h was found at build time) */
int sq_dist_built(void);
/* for --version: "MPI (Open MPI 4.1.4)", or "built without MPI" */
const char *sq_dist_build(void);
/* Initialises MPI once (later calls return SQ_OK). SQ_EARG with a one-line error in a build
   without MPI (size: the launcher's world size, for the message). */
sq_status sq_dist_init(int size);
/* the world's comm after sq_dist_init; NULL before (a process alone) */
const sq_comm *sq_dist_comm(void);
/* seconds a collective may wait for the other ranks before the job is ended (default 600) */
void sq_dist_set_timeout(double seconds);
double sq_dist_timeout(void);
/* Ends MPI at the end of the process: with rc != 0 and other ranks alive, MPI_Abort (the others
   stop at once instead of waiting for this rank); else MPI_Finalize. No-op without MPI. */
void sq_dist_finish(int rc);

#define SQ_DIST_TIMEOUT_DEFAULT 600.0

#ifdef __cplusplus
}
#endif
#endif
