/* comm.h: the ranks of a data-parallel run, as the library below the CLI sees them. One process
   per device; host/dist (MPI) fills an sq_comm, and the backend (backend.h, dist_attach) and the
   driver use it. A run of one process has no comm (NULL) or one of size 1. Kernels include this
   header only: they never see MPI. */
#ifndef SQAKD_COMM_H
#define SQAKD_COMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sq_comm {
    int rank, size;
    int local_rank, local_size;   /* this process among the ranks on its node */
    /* Collectives over host memory; every rank calls them in the same order with the same sizes.
       The sums are made in one fixed order (reduced to rank 0, then broadcast), so every rank gets
       the same bits. A collective that has not completed within the run's timeout (a rank died or
       hangs) ends the whole job: one message naming the rank and the timeout, then MPI_Abort.
       They never return an error. */
    void (*allreduce_f32)(const struct sq_comm *c, float *buf, size_t n);
    void (*allreduce_f64)(const struct sq_comm *c, double *buf, size_t n);
    void (*bcast)(const struct sq_comm *c, void *buf, size_t bytes, int root);
    /* Ends the whole job at once (every rank, however stuck), exit status code: for a backend
       whose own collectives (NCCL) hang past timeout_s, after it has said why. NULL: no launcher
       to end it through (the process then exits alone). */
    void (*abort)(const struct sq_comm *c, int code);
    double timeout_s;   /* how long a collective may wait for the other ranks (--dist-timeout) */
    void *impl;
} sq_comm;

#ifdef __cplusplus
}
#endif
#endif
