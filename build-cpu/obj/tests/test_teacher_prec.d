build-cpu/obj/tests/test_teacher_prec.o: tests/test_teacher_prec.c \
 include/sqakd/teacher_prec.h include/sqakd/model.h \
 include/sqakd/backend.h include/sqakd/common.h include/sqakd/quant.h \
 tests/util_check.h tests/util_fixtures.h include/sqakd/data.h \
 include/sqakd/safetensors.h
include/sqakd/teacher_prec.h:
include/sqakd/model.h:
include/sqakd/backend.h:
include/sqakd/common.h:
include/sqakd/quant.h:
tests/util_check.h:
tests/util_fixtures.h:
include/sqakd/data.h:
include/sqakd/safetensors.h:
