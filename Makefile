# sqakd build. CPU parts always; CUDA parts whenever nvcc is found (CUDA=0 forces them off).
#   make            library build/libsqakd.a and executable build/sqakd
#   make deps       install missing Debian packages (idempotent, quiet when all present)
#   make test       deps + build + every test (CPU suite, then the CUDA suite, which skips w/o GPU)
#   make demo       deps + build + the main job on Fashion-MNIST
#   make bench      throughput figures (not tests)
SHELL := /bin/bash
BUILD ?= build
CC ?= gcc
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(shell command -v nvcc 2>/dev/null || ( [ -x $(CUDA_HOME)/bin/nvcc ] && echo $(CUDA_HOME)/bin/nvcc ))

ifeq ($(CUDA),0)
  HAVE_CUDA := 0
else
  HAVE_CUDA := $(if $(NVCC),1,0)
endif
HAVE_CUDNN := $(if $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h),1,0)
HAVE_CUBLAS := $(if $(wildcard $(CUDA_HOME)/include/cublas_v2.h),1,0)
HAVE_BLAS := $(if $(wildcard /usr/include/x86_64-linux-gnu/cblas.h /usr/include/cblas.h /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h),1,0)
ifeq ($(HAVE_CUDA),1)
  ifneq ($(HAVE_CUDNN)$(HAVE_CUBLAS),11)
    $(error nvcc found but cuDNN or cuBLAS headers missing; install them or build with CUDA=0)
  endif
endif

WERROR := $(if $(CI),-Werror,)
CFLAGS_BASE := -std=gnu11 -O3 -march=x86-64-v2 -mtune=native -fno-trapping-math -fopenmp -Wall -Wextra -Wno-unused-parameter \
  -Wshadow -Wno-sign-compare $(WERROR) -Iinclude -Ihost -MMD -MP
ifeq ($(HAVE_BLAS),1)
  CFLAGS_BASE += -DSQ_HAVE_BLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread
  BLAS_LIBS := -lopenblas
endif
LIBS := $(BLAS_LIBS) -lpng -ljpeg -lz -lm -lpthread -fopenmp
NVCCFLAGS := -O3 -std=c++17 -Iinclude -Ihost -Werror all-warnings -Xcompiler -Wall,-Wno-unused-parameter \
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
ifeq ($(HAVE_CUDA),1)
  CFLAGS_BASE += -DSQ_HAVE_CUDA -I$(CUDA_HOME)/include
  LIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++
endif
CFLAGS ?=
ALL_CFLAGS := $(CFLAGS_BASE) $(CFLAGS)

HOST_SRC := $(filter-out host/cli/main.c,$(shell find host -name '*.c' | sort))
CPU_SRC := $(shell find kernels/cpu -name '*.c' | sort)
CUDA_C_SRC := $(if $(filter 1,$(HAVE_CUDA)),$(shell find kernels/cuda -name '*.c' | sort),)
CUDA_CU_SRC := $(if $(filter 1,$(HAVE_CUDA)),$(shell find kernels/cuda -name '*.cu' | sort),)
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(HOST_SRC) $(CPU_SRC) $(CUDA_C_SRC)) \
           $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CUDA_CU_SRC))
TEST_SRC := $(filter-out tests/test_cuda_%,$(wildcard tests/test_*.c))
TEST_CUDA_SRC := $(wildcard tests/test_cuda_*.c)
TEST_UTIL := $(wildcard tests/util_*.c)
TEST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SRC) $(TEST_UTIL))
TEST_CUDA_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_CUDA_SRC) $(TEST_UTIL))

# objects depend on the configuration: switching CUDA=0/1 or CFLAGS rebuilds them
CONFIG_STAMP := $(BUILD)/config.stamp
CONFIG_TEXT := $(HAVE_CUDA) $(HAVE_BLAS) $(ALL_CFLAGS) $(NVCCFLAGS)
$(shell mkdir -p $(BUILD); [ "$$(cat $(CONFIG_STAMP) 2>/dev/null)" = "$(CONFIG_TEXT)" ] || echo "$(CONFIG_TEXT)" > $(CONFIG_STAMP))

.PHONY: all deps test test-cpu test-cuda demo bench clean info fixtures
all: info $(BUILD)/sqakd

info:
	@echo "sqakd build: CUDA=$(HAVE_CUDA)$(if $(NVCC), (nvcc: $(NVCC)),) cuBLAS=$(HAVE_CUBLAS) cuDNN=$(HAVE_CUDNN) OpenMP=1 BLAS=$(HAVE_BLAS)$(if $(filter 1,$(HAVE_BLAS)), (OpenBLAS),)"

deps:
	@bash tools/install_deps.sh

$(BUILD)/obj/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/libsqakd.a: $(LIB_OBJ)
	@mkdir -p $(BUILD)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/sqakd: $(BUILD)/obj/host/cli/main.o $(BUILD)/libsqakd.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/sqakd_tests: $(TEST_OBJ) $(BUILD)/libsqakd.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcriterion $(LIBS)

$(BUILD)/sqakd_cuda_tests: $(TEST_CUDA_OBJ) $(BUILD)/libsqakd.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcriterion $(LIBS)

# The CUDA suite runs first (each test SKIPS, visibly, without a GPU), the CPU suite last.
test: deps
	@$(MAKE) --no-print-directory all $(BUILD)/sqakd_tests $(BUILD)/sqakd_cuda_tests
	@$(MAKE) --no-print-directory test-cuda test-cpu

test-cpu: $(BUILD)/sqakd_tests $(BUILD)/sqakd
	SQAKD_BIN=$(abspath $(BUILD)/sqakd) OMP_NUM_THREADS=2 $(BUILD)/sqakd_tests --jobs 1

test-cuda: $(BUILD)/sqakd_cuda_tests
	@set -o pipefail; $(BUILD)/sqakd_cuda_tests --jobs 1 --verbose 2>&1 | grep -E '^\[(SKIP|FAIL|====|----)\]' | grep -v 'Running\|Criterion v'

demo: deps
	@$(MAKE) --no-print-directory all
	@bash tools/demo.sh

bench: all
	@SQAKD_BIN=$(abspath $(BUILD)/sqakd) bash tools/bench.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
