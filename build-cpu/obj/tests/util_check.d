build-cpu/obj/tests/util_check.o: tests/util_check.c tests/util_check.h
tests/util_check.h:
