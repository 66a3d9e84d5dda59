/* test_safetensors_atomic.c: Criterion suite "safetensors" (shared with
   test_safetensors_format.c; this file declares the suite and its fixture): atomic writes that
   leave neither a torn file nor a temporary file behind (missing or read-only directory, failures
   injected through the atomic writer's fault hook, rename onto a directory), sq_write_file_atomic, and the
   writer's argument checks. Each test gets its own mkdtemp scratch directory (sqt_scratch_dir). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "sqakd/safetensors.h"
#include "util_fixtures.h"

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(sqt_scratch_dir, sizeof sqt_scratch_dir, "%s/sqakd_io_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    cr_assert(mkdtemp(sqt_scratch_dir), "mkdtemp %s: %s", sqt_scratch_dir, strerror(errno));
}

static void teardown(void)
{
    chmod(sqt_scratch_dir, 0700);
    remove_tree(sqt_scratch_dir);
    sqt_fail_writes_at(-1);
}

TestSuite(safetensors, .init = setup, .fini = teardown);

Test(safetensors, write_into_missing_directory_fails_cleanly)
{
    char p[1024];
    sqt_path_in(p, sizeof p, "no/such/dir/ckpt.safetensors");
    sq_st_file f = sqt_st_sample();
    sq_status st = sq_st_write(p, &f);
    const char *msg = sq_last_error();
    cr_assert_eq(st, SQ_EIO, "status %s (%s)", sq_status_str(st), msg);
    cr_expect(strstr(msg, p), "message does not name the path: %s", msg);
    cr_expect(strstr(msg, strerror(ENOENT)), "message lacks the errno text: %s", msg);
    cr_expect_eq(sqt_count_entries(sqt_scratch_dir, NULL, 0), 0, "something was created");
    cr_expect_eq(sq_write_file_atomic(p, "x", 1), SQ_EIO);
}

Test(safetensors, write_into_readonly_directory_fails_cleanly)
{
    if (geteuid() == 0) {
        teardown(); /* a skipped test does not run .fini */
        cr_skip_test("%s", "running as root, which bypasses directory permissions; the "
                     "injected write-fault and missing-directory tests cover this path");
    }
    char p[1024];
    sqt_path_in(p, sizeof p, "ckpt.safetensors");
    cr_assert_eq(chmod(sqt_scratch_dir, 0555), 0);
    sq_st_file f = sqt_st_sample();
    sq_status st = sq_st_write(p, &f);
    chmod(sqt_scratch_dir, 0700);
    cr_assert_eq(st, SQ_EIO, "status %s (%s)", sq_status_str(st), sq_last_error());
    cr_expect(strstr(sq_last_error(), p), "message does not name the path: %s", sq_last_error());
    cr_expect_eq(sqt_count_entries(sqt_scratch_dir, NULL, 0), 0, "something was created");
}

Test(safetensors, failed_write_keeps_the_previous_file)
{
    char p[1024], name[256];
    sqt_path_in(p, sizeof p, "ckpt.safetensors");
    sqt_st_write_sample(p);
    size_t n0;
    unsigned char *before = sqt_slurp(p, &n0);
    /* a different checkpoint that should replace it */
    float other[5] = { 9, 8, 7, 6, 5 };
    sq_st_tensor t = sqt_st_tensor("other", SQ_ST_F32, 1, (int64_t[]){ 5 }, other);
    sq_st_file g = { .ntensors = 1, .tensors = &t };
    size_t limits[] = { 0, 3, 8, 20, 40, 60 };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        sqt_fail_writes_at((long long)limits[i]);
        sq_status st = sq_st_write(p, &g);
        cr_assert_eq(st, SQ_EIO, "limit %zu: status %s", limits[i], sq_status_str(st));
        cr_expect(strstr(sq_last_error(), p) && strstr(sq_last_error(), strerror(ENOSPC)),
                  "limit %zu: message lacks path or errno text: %s", limits[i], sq_last_error());
        cr_assert_eq(sqt_count_entries(sqt_scratch_dir, name, sizeof name), 1, "limit %zu: temporary file left", limits[i]);
        cr_expect_str_eq(name, "ckpt.safetensors");
        size_t n1;
        unsigned char *after = sqt_slurp(p, &n1);
        cr_assert_eq(n1, n0, "limit %zu: previous file changed size", limits[i]);
        cr_expect_eq(memcmp(before, after, n0), 0, "limit %zu: previous file changed", limits[i]);
        free(after);
    }
    sqt_fail_writes_at(91); /* 8 + 64-byte padded header + 20 bytes = 92 */
    cr_expect_eq(sq_st_write(p, &g), SQ_EIO);
    sqt_fail_writes_at(92); /* exactly the file size: succeeds */
    cr_assert_eq(sq_st_write(p, &g), SQ_OK, "%s", sq_last_error());
    sqt_fail_writes_at(-1);
    sq_st_file r;
    cr_assert_eq(sq_st_read(p, &r), SQ_OK, "%s", sq_last_error());
    cr_expect(r.ntensors == 1 && sq_st_find(&r, "other") && ((float *)r.tensors[0].data)[4] == 5.0f);
    sq_st_free(&r);
    free(before);
}

Test(safetensors, rename_onto_directory_fails_and_removes_temp)
{
    char p[1024];
    sqt_path_in(p, sizeof p, "taken");
    cr_assert_eq(mkdir(p, 0700), 0);
    sq_status st = sq_write_file_atomic(p, "hello", 5);
    cr_assert_eq(st, SQ_EIO, "status %s", sq_status_str(st));
    cr_expect(strstr(sq_last_error(), "renaming"), "%s", sq_last_error());
    cr_expect_eq(sqt_count_entries(sqt_scratch_dir, NULL, 0), 1, "temporary file left behind");
}

Test(safetensors, write_file_atomic_round_trip_and_hook)
{
    char p[1024];
    sqt_path_in(p, sizeof p, "result.json");
    const char *a = "{\"acc\":0.5}\n", *b = "{\"acc\":0.75, \"longer\":true}\n";
    cr_assert_eq(sq_write_file_atomic(p, a, strlen(a)), SQ_OK, "%s", sq_last_error());
    sqt_fail_writes_at(10);
    cr_assert_eq(sq_write_file_atomic(p, b, strlen(b)), SQ_EIO);
    sqt_fail_writes_at(-1);
    size_t n;
    unsigned char *got = sqt_slurp(p, &n);
    cr_expect(n == strlen(a) && !memcmp(got, a, n), "previous content changed");
    free(got);
    cr_assert_eq(sq_write_file_atomic(p, b, strlen(b)), SQ_OK, "%s", sq_last_error());
    got = sqt_slurp(p, &n);
    cr_expect(n == strlen(b) && !memcmp(got, b, n), "new content not written");
    free(got);
    cr_expect_eq(sqt_count_entries(sqt_scratch_dir, NULL, 0), 1);
}

Test(safetensors, writer_rejects_bad_arguments)
{
    char p[1024];
    sqt_path_in(p, sizeof p, "bad.safetensors");
    float x[4] = { 0 };
    sq_st_tensor t[2] = { sqt_st_tensor("a", SQ_ST_F32, 1, (int64_t[]){ 4 }, x), sqt_st_tensor("a", SQ_ST_F32, 1, (int64_t[]){ 4 }, x) };
    sq_st_file f = { .ntensors = 2, .tensors = t };
    cr_expect_eq(sq_st_write(p, &f), SQ_EARG, "duplicate names accepted");
    f.ntensors = 1;
    t[0].nbytes = 12;
    cr_expect_eq(sq_st_write(p, &f), SQ_EARG, "nbytes mismatch accepted");
    t[0].nbytes = 16;
    t[0].name = "__metadata__";
    cr_expect_eq(sq_st_write(p, &f), SQ_EARG, "reserved name accepted");
    t[0].name = "a";
    t[0].dtype = (sq_st_dtype)7;
    cr_expect_eq(sq_st_write(p, &f), SQ_EARG, "invalid dtype accepted");
    cr_expect_eq(sqt_count_entries(sqt_scratch_dir, NULL, 0), 0, "a file was created");
}
