/* tb_events.h (host/io): TensorBoard event files. A file is a sequence of TFRecord records (u64
   length, masked CRC32C of those 8 bytes, the data, masked CRC32C of the data, little-endian),
   each holding one Event message (host/io/tb_event.proto: TensorBoard's field numbers): first
   file_version "brain.Event:2", then scalars as summary { value { tag, simple_value } } at a step
   with the wall time. The training driver writes one per run (host/train/driver.c). */
#ifndef SQAKD_IO_TB_EVENTS_H
#define SQAKD_IO_TB_EVENTS_H
#include "sqakd/common.h"

typedef struct sq_tb_writer sq_tb_writer;

/* A writer of a new event file in dir, named like TensorBoard's own writer names them:
   events.out.tfevents.<seconds, 10 digits>.<host>.<pid>.<n> (so that TensorBoard reads the files of
   a directory in the order they were started). Nothing is written before the first sq_tb_flush:
   it creates dir and the file (O_EXCL), whose first event is file_version. resume_step < 0 is a
   fresh run: the first flush removes the event files an earlier run left in dir (a run that
   stopped before its first epoch ended, or one replaced with --overwrite). resume_step >= 0 is a
   session resumed from the state committed at that step: the older files stay, and the file's
   second event is a SessionLog START at resume_step + 1, on which TensorBoard drops whatever older
   files hold from that step on (events of an epoch the stopped session never committed) and keeps
   the committed ones. */
sq_status sq_tb_open(const char *dir, int64_t resume_step, sq_tb_writer **out);
/* Adds one scalar event (tag: bytes other than letters, digits and "_-./" become '_') to the
   events pending until the next flush. */
void sq_tb_scalar(sq_tb_writer *w, const char *tag, int64_t step, double value);
/* Adds one event holding every number of json, a flat JSON object (a metrics.jsonl line), as the
   scalar prefix+key, except the key skip (may be NULL); other members are left out. SQ_EFORMAT
   when json is not an object. */
sq_status sq_tb_json_scalars(sq_tb_writer *w, const char *prefix, int64_t step, const char *json, const char *skip);
/* Appends the pending events to the file and fsyncs it (the first flush creates it, see
   sq_tb_open). On failure the file is cut back to its length before this flush, so that it never
   ends in a torn record, the pending events are dropped, and SQ_EIO names the file and why. */
sq_status sq_tb_flush(sq_tb_writer *w);
/* The event file's path (it exists once a flush has succeeded). */
const char *sq_tb_path(const sq_tb_writer *w);
/* Frees w; events still pending are dropped (they belong to an epoch that was not committed). */
void sq_tb_close(sq_tb_writer *w);

/* CRC32C (Castagnoli), continuing from crc (0 to start), and TFRecord's masked form of it:
   ((c >> 15) | (c << 17)) + 0xa282ead8. */
uint32_t sq_crc32c(uint32_t crc, const void *data, size_t n);
uint32_t sq_tb_masked_crc(const void *data, size_t n);
#endif
