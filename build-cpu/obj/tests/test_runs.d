build-cpu/obj/tests/test_runs.o: tests/test_runs.c host/io/atomic_write.h \
 include/sqakd/common.h include/sqakd/checkpoint.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/quant.h \
 include/sqakd/safetensors.h include/sqakd/train.h include/sqakd/data.h \
 host/train/train_internal.h tests/util_check.h tests/util_fixtures.h
host/io/atomic_write.h:
include/sqakd/common.h:
include/sqakd/checkpoint.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/quant.h:
include/sqakd/safetensors.h:
include/sqakd/train.h:
include/sqakd/data.h:
host/train/train_internal.h:
tests/util_check.h:
tests/util_fixtures.h:
