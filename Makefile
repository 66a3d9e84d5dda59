# sqakd build. CPU parts always; CUDA parts whenever nvcc is found (CUDA=0 forces them off).
#   make            library build/libsqakd.a and executable build/sqakd
#   make deps       install missing Debian packages (idempotent, quiet when all present)
#   make deps-py    the Python side of the ONNX tests: Debian's torch, torchvision, onnx, numpy and
#                   onnxruntime from PyPI for /usr/bin/python3 (tools/install_py_deps.sh)
#   make test       deps + build + every test (CPU suite, then the CUDA suite, which skips w/o GPU, then
#                   test-py: the Python package in a venv, pytest; test-torch: PyTorch twins of the
#                   students and round trips, tools/torch_twin_test.py; then test-onnx: ONNX
#                   import/export checked by onnxruntime, tools/onnx_e2e.sh; then test-tb:
#                   TensorBoard event files read back by tensorboard, tools/tb_readback.py)
#   make wheel      the Python package (python/) as a wheel in build/wheel/; make lib-so: libsqakd.so
#   make demo       deps + build + the main job on Fashion-MNIST
#   make bench      throughput figures (not tests); make bench-ops: time and GB/s of every op of the
#                   table (the conformance harness's rows at their bench shapes), CPU and CUDA
#   make memcheck   every suite under ASan + UBSan + LSan; make test-san: CI's short sanitized subset
#   make test-crash random kill -9 points, resumed runs compared byte for byte with uninterrupted ones
#   make fuzz       libFuzzer harnesses of every parser, FUZZ_SECONDS (120) each; fuzz-ci: 30 s each
#                   (tests/fuzz/fuzz.mk)
#   make lab        the kernel lab (kernels/lab, never in the library) under cuemu: its validation,
#                   and its timing harness once (figures meaningless there); make lab-cuda: the same
#                   binaries built with nvcc, to run on a GPU
SHELL := /bin/bash
BUILD ?= build
CC ?= gcc
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(shell command -v nvcc 2>/dev/null || ( [ -x $(CUDA_HOME)/bin/nvcc ] && echo $(CUDA_HOME)/bin/nvcc ))

# CUEMU=1: the CUDA backend built for cuemu (tests/cuemu), a CPU emulation of the CUDA runtime,
# cuDNN and cuBLAS: .cu files go through g++, the libraries are replaced by tests/cuemu/*.
ifeq ($(CUEMU),1)
  HAVE_CUDA := 1
else ifeq ($(CUDA),0)
  HAVE_CUDA := 0
else
  HAVE_CUDA := $(if $(NVCC),1,0)
endif
HAVE_CUDNN := $(if $(wildcard $(CUDA_HOME)/include/cudnn.h /usr/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h),1,0)
HAVE_CUBLAS := $(if $(wildcard $(CUDA_HOME)/include/cublas_v2.h),1,0)
HAVE_BLAS := $(if $(wildcard /usr/include/x86_64-linux-gnu/cblas.h /usr/include/cblas.h /usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h),1,0)
# NCCL (the CUDA backend's gradient all-reduce, kernels/cuda/dist.c): the CUDA toolkit's own, Debian's
# libnccl-dev, or PyPI's nvidia-nccl-cu12 (tools/install_py_deps.sh installs it where nvcc is and no
# NCCL is); NCCL=0 leaves it out (the all-reduce then goes through host memory)
ifneq ($(NCCL),0)
  NCCL_INC := $(firstword $(foreach d,$(CUDA_HOME)/include /usr/include /usr/local/include,$(if $(wildcard $(d)/nccl.h),$(d),)))
  NCCL_LIBDIR := $(firstword $(foreach d,$(CUDA_HOME)/lib64 $(CUDA_HOME)/lib /usr/lib/x86_64-linux-gnu /usr/local/lib,$(if $(wildcard $(d)/libnccl.so.2),$(d),)))
  ifeq ($(NCCL_INC)$(NCCL_LIBDIR),)
    NCCL_PIP := $(if $(filter 1,$(if $(filter 1,$(CUEMU)),0,$(HAVE_CUDA))),$(shell /usr/bin/python3 -c 'import nvidia.nccl, os; print(os.path.dirname(nvidia.nccl.__file__))' 2>/dev/null),)
    NCCL_INC := $(if $(wildcard $(NCCL_PIP)/include/nccl.h),$(NCCL_PIP)/include,)
    NCCL_LIBDIR := $(if $(wildcard $(NCCL_PIP)/lib/libnccl.so.2),$(NCCL_PIP)/lib,)
  endif
endif
HAVE_NCCL := $(if $(filter 1,$(CUEMU)),0,$(if $(filter 1,$(HAVE_CUDA)),$(if $(and $(NCCL_INC),$(NCCL_LIBDIR)),1,0),0))
# MPI (data-parallel runs, host/dist): Debian's OpenMPI when its mpi.h is there; MPI=0 leaves it out
MPI_DIR := /usr/lib/x86_64-linux-gnu/openmpi
ifeq ($(MPI),0)
  HAVE_MPI := 0
else
  HAVE_MPI := $(if $(wildcard $(MPI_DIR)/include/mpi.h),1,0)
endif
ifeq ($(HAVE_CUDA),1)
  ifneq ($(HAVE_CUDNN)$(HAVE_CUBLAS),11)
    $(error nvcc found but cuDNN or cuBLAS headers missing; install them or build with CUDA=0)
  endif
endif

WERROR := $(if $(CI),-Werror,)
CFLAGS_BASE := -std=gnu11 -O3 -march=x86-64-v2 -mtune=native -fno-trapping-math -fopenmp -Wall -Wextra -Wno-unused-parameter \
  -Wshadow -Wno-sign-compare $(WERROR) -Iinclude -MMD -MP
# host/ and tests/ see host/'s internal headers; kernels/ sees include/ only (checked below)
HOST_INC := -Ihost
ifeq ($(HAVE_BLAS),1)
  CFLAGS_BASE += -DSQ_HAVE_BLAS -I/usr/include/x86_64-linux-gnu/openblas-pthread
  BLAS_LIBS := -lopenblas
endif
LIBS := $(BLAS_LIBS) -lpng -ljpeg -lz -lprotobuf-c -lcairo -lm -lpthread -fopenmp
ifeq ($(HAVE_MPI),1)
  LIBS += -L$(MPI_DIR)/lib -lmpi
endif
ifeq ($(HAVE_NCCL),1)
  LIBS += -L$(NCCL_LIBDIR) -Wl,-rpath,$(NCCL_LIBDIR) -l:libnccl.so.2
endif
NVCCFLAGS := -O3 -std=c++17 -Iinclude -Werror all-warnings -Xcompiler -Wall,-Wno-unused-parameter \
  -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
ifeq ($(CUEMU),1)
  CFLAGS_BASE += -DSQ_HAVE_CUDA -DSQ_CUEMU -I$(CUDA_HOME)/include
  LIBS += -lstdc++
  CXX ?= g++
  # -Wno-unknown-pragmas: g++ has no '#pragma unroll' (nvcc's); the emulation ignores it
  CUEMU_CXXFLAGS := -std=c++17 -O2 -fopenmp -Wall -Wextra -Wno-unused-parameter -Wno-unused-function -Wno-unknown-pragmas \
    $(WERROR) -Iinclude -Itests/cuemu -I$(CUDA_HOME)/include -DSQ_HAVE_CUDA -MMD -MP $(CXXFLAGS)
  NVCCFLAGS := cuemu $(CUEMU_CXXFLAGS)
else ifeq ($(HAVE_CUDA),1)
  CFLAGS_BASE += -DSQ_HAVE_CUDA -I$(CUDA_HOME)/include
  LIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lcudart -lstdc++
endif
# PIC=1: position-independent objects for libsqakd.so, the library of the Python package (python/);
# `make lib-so` builds them in a BUILD directory of their own
ifeq ($(PIC),1)
  CFLAGS_BASE += -fPIC
  ifneq ($(CUEMU),1)
    NVCCFLAGS += -Xcompiler -fPIC
  endif
endif
CFLAGS ?=
ALL_CFLAGS := $(CFLAGS_BASE) $(CFLAGS)

HOST_SRC := $(filter-out host/cli/main.c,$(shell find host -name '*.c' | sort))
# the base layer below host/ and the backends: errors, allocation, time (headers in include/sqakd)
BASE_SRC := $(shell find kernels/base -name '*.c' | sort)
CPU_SRC := $(shell find kernels/cpu -name '*.c' | sort)
CUDA_C_SRC := $(if $(filter 1,$(HAVE_CUDA)),$(shell find kernels/cuda -name '*.c' | sort),)
CUDA_CU_SRC := $(if $(filter 1,$(HAVE_CUDA)),$(shell find kernels/cuda -name '*.cu' | sort),)
# without CUDA, sq_backend_cuda() is the stub of kernels/cuda_absent.c
CUDA_ABSENT_SRC := $(if $(filter 1,$(HAVE_CUDA)),,kernels/cuda_absent.c)
CUEMU_SRC := $(if $(filter 1,$(CUEMU)),$(filter-out tests/cuemu/test_%,$(wildcard tests/cuemu/*.c tests/cuemu/*.cc)),)
# ONNX (host/io/onnx.c): C code generated by protoc-c from the onnx.proto schema of Debian's
# python3-onnx, into $(BUILD)/gen; only host/io/onnx.c includes its header
ONNX_PROTO ?= /usr/lib/python3/dist-packages/onnx/onnx.proto
GEN := $(BUILD)/gen
GEN_OBJ := $(BUILD)/obj/gen/onnx.pb-c.o
# TensorBoard event files (host/io/tb_events.c): the messages of TensorBoard's event.proto that it
# writes, host/io/tb_event.proto, generated the same way; only tb_events.c (and its test) include it
TB_GEN_OBJ := $(BUILD)/obj/gen/tb_event.pb-c.o
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(BASE_SRC) $(HOST_SRC) $(CPU_SRC) $(CUDA_C_SRC) $(CUDA_ABSENT_SRC)) $(GEN_OBJ) $(TB_GEN_OBJ) \
           $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CUDA_CU_SRC)) \
           $(patsubst %,$(BUILD)/obj/%.o,$(filter %.cc,$(CUEMU_SRC))) \
           $(patsubst %.c,$(BUILD)/obj/%.o,$(filter %.c,$(CUEMU_SRC)))
TEST_SRC := $(filter-out tests/test_cuda_%,$(wildcard tests/test_*.c))
TEST_CUDA_SRC := $(wildcard tests/test_cuda_*.c)
TEST_UTIL := $(wildcard tests/util_*.c)
TEST_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_SRC) $(TEST_UTIL))
TEST_CUDA_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_CUDA_SRC) $(TEST_UTIL))

# objects depend on the configuration: switching CUDA=0/1 or CFLAGS rebuilds them
CONFIG_STAMP := $(BUILD)/config.stamp
CONFIG_TEXT := $(HAVE_CUDA) $(HAVE_BLAS) $(ALL_CFLAGS) $(NVCCFLAGS)
$(shell mkdir -p $(BUILD); [ "$$(cat $(CONFIG_STAMP) 2>/dev/null)" = "$(CONFIG_TEXT)" ] || echo "$(CONFIG_TEXT)" > $(CONFIG_STAMP))

.PHONY: all deps deps-py test test-recipe test-onnx test-py test-torch test-tb lib-so lib-so-path wheel test-cpu test-cuda test-cuemu memcheck test-san test-crash demo bench bench-ops clean info \
        fixtures lab lab-cuda
all: info $(BUILD)/sqakd

info:
	@echo "sqakd build: CUDA=$(HAVE_CUDA)$(if $(NVCC), (nvcc: $(NVCC)),) cuBLAS=$(HAVE_CUBLAS) cuDNN=$(HAVE_CUDNN) OpenMP=1 BLAS=$(HAVE_BLAS)$(if $(filter 1,$(HAVE_BLAS)), (OpenBLAS),) MPI=$(HAVE_MPI) NCCL=$(HAVE_NCCL)"

deps:
	@bash tools/install_deps.sh

deps-py:
	@bash tools/install_py_deps.sh

$(BUILD)/obj/%.o: %.c $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(HOST_INC) -c $< -o $@

# the schema is copied beside the generated files so that they include "onnx.pb-c.h" plainly
# (package onnx: the types are Onnx__*); one protoc-c run makes both files (grouped target)
$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h &: $(ONNX_PROTO)
	@[ -f $(ONNX_PROTO) ] && command -v protoc-c >/dev/null || \
	  { echo "sqakd: $(ONNX_PROTO) or protoc-c missing: run 'make deps' (python3-onnx, protobuf-c-compiler, libprotobuf-c-dev)"; exit 1; }
	@mkdir -p $(GEN)
	cp $(ONNX_PROTO) $(GEN)/onnx.proto
	cd $(GEN) && protoc-c --c_out=. onnx.proto

$(GEN_OBJ): $(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -I$(GEN) -c $< -o $@

$(BUILD)/obj/host/io/onnx.o: HOST_INC += -I$(GEN)
$(BUILD)/obj/host/io/onnx.o: $(GEN)/onnx.pb-c.h

$(GEN)/tb_event.pb-c.c $(GEN)/tb_event.pb-c.h &: host/io/tb_event.proto
	@command -v protoc-c >/dev/null || { echo "sqakd: protoc-c missing: run 'make deps' (protobuf-c-compiler)"; exit 1; }
	@mkdir -p $(GEN)
	protoc-c --proto_path=host/io --c_out=$(GEN) tb_event.proto

$(TB_GEN_OBJ): $(GEN)/tb_event.pb-c.c $(GEN)/tb_event.pb-c.h $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -I$(GEN) -c $< -o $@

$(BUILD)/obj/host/io/tb_events.o $(BUILD)/obj/tests/test_tb_events.o: HOST_INC += -I$(GEN)
$(BUILD)/obj/host/io/tb_events.o $(BUILD)/obj/tests/test_tb_events.o: $(GEN)/tb_event.pb-c.h

# kernels/ compiles with -Iinclude only, and no file under it may include a host/ header: every
# quoted include must resolve beside the file or under include/ (kernels/lab: also tests/),
# checked before any kernel is compiled or archived, with one line per offending include
KERNEL_FILES := $(shell find kernels -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' | sort)
KERNEL_INCLUDE_CHECK := $(BUILD)/kernels-includes.ok
$(KERNEL_INCLUDE_CHECK): $(KERNEL_FILES) tools/check_kernel_includes.pl
	@mkdir -p $(dir $@)
	@perl tools/check_kernel_includes.pl $(KERNEL_FILES)
	@touch $@

$(BUILD)/obj/kernels/%.o: kernels/%.c $(CONFIG_STAMP) | $(KERNEL_INCLUDE_CHECK)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

ifeq ($(CUEMU),1)
$(BUILD)/obj/%.cu.o: %.cu $(CONFIG_STAMP) tests/cuemu/rewrite.pl tests/cuemu/cuemu.h | $(KERNEL_INCLUDE_CHECK)
	@mkdir -p $(dir $@)
	perl tests/cuemu/rewrite.pl $< > $(BUILD)/obj/$*.cu.cc
	$(CXX) $(CUEMU_CXXFLAGS) -include cuemu.h -x c++ -c $(BUILD)/obj/$*.cu.cc -o $@

$(BUILD)/obj/%.cc.o: %.cc $(CONFIG_STAMP)
	@mkdir -p $(dir $@)
	$(CXX) $(CUEMU_CXXFLAGS) -c $< -o $@
else
$(BUILD)/obj/%.cu.o: %.cu $(CONFIG_STAMP) | $(KERNEL_INCLUDE_CHECK)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@
endif

$(BUILD)/libsqakd.a: $(LIB_OBJ) $(KERNEL_INCLUDE_CHECK)
	@mkdir -p $(BUILD)
	@rm -f $@
	ar rcs $@ $(LIB_OBJ)

# sq_version.h: the version (file VERSION) and the git commit the build came from ("unknown" outside
# a git checkout, "-dirty" with uncommitted changes); rewritten only when it changes, so a new commit
# rebuilds one object (host/cli/cli_main.c), not the tree
SQ_VERSION_TEXT := \#define SQ_VERSION "$(shell cat VERSION)"\n\#define SQ_GIT_COMMIT "$(shell c=$$(git rev-parse --short=12 HEAD 2>/dev/null) && { git diff --quiet HEAD -- 2>/dev/null && echo $$c || echo $$c-dirty; } || echo unknown)"
$(shell mkdir -p $(GEN); printf '$(SQ_VERSION_TEXT)\n' > $(GEN)/sq_version.h.new; cmp -s $(GEN)/sq_version.h.new $(GEN)/sq_version.h || mv $(GEN)/sq_version.h.new $(GEN)/sq_version.h; rm -f $(GEN)/sq_version.h.new)
$(BUILD)/obj/host/cli/cli_main.o $(BUILD)/obj/host/api/api.o: ALL_CFLAGS += -I$(GEN)
# host/dist alone sees mpi.h, kernels/cuda/dist.c alone nccl.h; their own stamp rebuilds them when
# MPI or NCCL comes or goes
MPI_STAMP := $(BUILD)/mpi.stamp
$(shell mkdir -p $(BUILD); [ "$$(cat $(MPI_STAMP) 2>/dev/null)" = "$(HAVE_MPI) $(HAVE_NCCL)" ] || echo "$(HAVE_MPI) $(HAVE_NCCL)" > $(MPI_STAMP))
$(BUILD)/obj/host/dist/dist.o: $(MPI_STAMP)
$(BUILD)/obj/host/dist/dist.o: ALL_CFLAGS += $(if $(filter 1,$(HAVE_MPI)),-DSQ_HAVE_MPI -I$(MPI_DIR)/include,)
$(BUILD)/obj/kernels/cuda/dist.o: $(MPI_STAMP)
$(BUILD)/obj/kernels/cuda/dist.o: ALL_CFLAGS += $(if $(filter 1,$(HAVE_NCCL)),-DSQ_HAVE_NCCL -I$(NCCL_INC),)

$(BUILD)/sqakd: $(BUILD)/obj/host/cli/main.o $(BUILD)/libsqakd.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

# ---- libsqakd.so and the Python package (python/, docs/python.md). lib-so builds the shared library
# from PIC objects in $(PIC_BUILD) (pic-cpu: without CUDA); python/setup.py runs it and asks
# lib-so-path where it is. wheel: build/wheel/sqakd-*.whl (CUDA where nvcc is found, as `make`).
PY ?= /usr/bin/python3
PIC_BUILD := $(BUILD)/pic$(if $(filter 1,$(HAVE_CUDA)),,-cpu)
$(BUILD)/libsqakd.so: $(LIB_OBJ) $(KERNEL_INCLUDE_CHECK)
	@[ "$(PIC)" = 1 ] || { echo "sqakd: $@ needs PIC=1 objects: run 'make lib-so'"; exit 1; }
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,libsqakd.so -Wl,--no-undefined -o $@ $(LIB_OBJ) $(LIBS)

lib-so:
	@$(MAKE) --no-print-directory PIC=1 BUILD=$(PIC_BUILD) $(PIC_BUILD)/libsqakd.so

lib-so-path:
	@echo $(abspath $(PIC_BUILD)/libsqakd.so)

wheel: lib-so
	@mkdir -p $(BUILD)/wheel
	cd python && SQAKD_BUILD=$(abspath $(BUILD)) SQAKD_CUDA=$(HAVE_CUDA) $(PY) -m pip wheel --quiet --no-build-isolation \
	  --no-deps --disable-pip-version-check -w $(abspath $(BUILD)/wheel) .
	@ls -1 $(BUILD)/wheel/sqakd-*.whl

# test-py: the package installed into a venv (Debian's numpy and pytest seen through
# --system-site-packages; nothing is downloaded) and its pytest suite, python/tests. Its library is
# built without CUDA (PY_TEST_CUDA=1: with it, where nvcc is found), which spares `make test` a
# second, position-independent compile of the CUDA kernels; `make wheel` and `pip install ./python`
# include them.
PY_TEST_CUDA ?= 0
PY_VENV := $(BUILD)/py/venv
test-py: $(BUILD)/sqakd
	@[ -x $(PY_VENV)/bin/python ] || $(PY) -m venv --system-site-packages $(PY_VENV)
	SQAKD_BUILD=$(abspath $(BUILD)) SQAKD_CUDA=$(PY_TEST_CUDA) $(PY_VENV)/bin/python -m pip install --quiet \
	  --no-build-isolation --no-deps --disable-pip-version-check ./python
	cd python/tests && SQAKD_BIN=$(abspath $(BUILD)/sqakd) OMP_NUM_THREADS=2 $(abspath $(PY_VENV))/bin/python -m pytest -q -rs \
	  -p no:cacheprovider .

$(BUILD)/sqakd_tests: $(TEST_OBJ) $(BUILD)/libsqakd.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcriterion $(LIBS)

$(BUILD)/sqakd_cuda_tests: $(TEST_CUDA_OBJ) $(BUILD)/libsqakd.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcriterion $(LIBS)

# cuemu's own tests (CUEMU=1 builds): the cuDNN/cuBLAS emulation alone, and the kernel executor
$(BUILD)/cuemu_dnn_tests: $(BUILD)/obj/tests/cuemu/test_dnn_emu.o $(BUILD)/obj/tests/cuemu/test_dnn_api.o \
                          $(BUILD)/obj/tests/cuemu/test_dnn_backend.o \
                          $(BUILD)/obj/tests/cuemu/test_dnn_util.o $(BUILD)/obj/tests/cuemu/cudnn_emu.o \
                          $(BUILD)/obj/tests/cuemu/cudnn_emu_algo.o $(BUILD)/obj/tests/cuemu/cudnn_emu_capture.o \
                          $(BUILD)/obj/tests/cuemu/cudnn_emu_ops.o $(BUILD)/obj/tests/cuemu/cudnn_emu_backend.o \
                          $(BUILD)/obj/tests/cuemu/cublas_emu.o $(BUILD)/obj/tests/cuemu/capture.cc.o
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcriterion -lstdc++ -lm -fopenmp

$(BUILD)/cuemu_exec_tests: $(BUILD)/obj/tests/cuemu/test_exec.cu.o $(BUILD)/obj/tests/cuemu/test_memory.cu.o \
                           $(BUILD)/obj/tests/cuemu/test_capture.cu.o \
                           $(BUILD)/obj/tests/cuemu/runtime.cc.o $(BUILD)/obj/tests/cuemu/capture.cc.o
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcriterion -lstdc++ -lm -fopenmp

# ---- kernels/lab: kernel variants that lost, with their validation (Criterion, lab_tests) and
# timing (lab_bench) harness; never part of libsqakd.a (kernels/lab/README.md). Its sources may
# include tests/' helpers (-Itests); its .cu files compile kernels/cuda's again.
LAB_C_SRC := $(shell find kernels/lab -name '*.c' 2>/dev/null | sort)
LAB_CU_SRC := $(shell find kernels/lab -name '*.cu' 2>/dev/null | sort)
LAB_TEST_SRC := $(shell find kernels/lab -name 'test_*.c' 2>/dev/null | sort)
LAB_BENCH_SRC := $(shell find kernels/lab -name 'bench*.c' 2>/dev/null | sort)
LAB_CORE_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(LAB_TEST_SRC) $(LAB_BENCH_SRC),$(LAB_C_SRC))) \
                $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(LAB_CU_SRC))

$(BUILD)/obj/kernels/lab/%.o: kernels/lab/%.c $(CONFIG_STAMP) | $(KERNEL_INCLUDE_CHECK)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -c $< -o $@

$(BUILD)/lab/lab_tests: $(patsubst %.c,$(BUILD)/obj/%.o,$(LAB_TEST_SRC)) $(LAB_CORE_OBJ) \
                        $(BUILD)/obj/tests/util_check.o $(BUILD)/obj/tests/util_fixtures.o $(BUILD)/libsqakd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcriterion $(LIBS)

$(BUILD)/lab/lab_bench: $(patsubst %.c,$(BUILD)/obj/%.o,$(LAB_BENCH_SRC)) $(LAB_CORE_OBJ) $(BUILD)/libsqakd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

lab:
	@$(MAKE) --no-print-directory CUEMU=1 BUILD=$(BUILD)/cuemu $(BUILD)/cuemu/lab/lab_tests $(BUILD)/cuemu/lab/lab_bench
	@set -o pipefail; echo "lab: validation (kernels/lab under cuemu, the CPU emulation, not a GPU)"; \
	  $(BUILD)/cuemu/lab/lab_tests --jobs 1 2>&1 | grep -E '^\[(SKIP|FAIL|====|----)\]' | grep -v 'Running\|Criterion v'
	@echo "lab: timing harness, once (cuemu: the figures mean nothing)"
	@$(BUILD)/cuemu/lab/lab_bench grid --sizes 64K --min-time 0 --reduce-blocks 3 > $(BUILD)/cuemu/lab/bench_grid.log
	@$(BUILD)/cuemu/lab/lab_bench conv --batch 2 --iters 1 > $(BUILD)/cuemu/lab/bench_conv.log
	@echo "lab: lab_bench grid and conv ran ($(BUILD)/cuemu/lab/bench_*.log)"

lab-cuda:
	@[ "$(HAVE_CUDA)" = 1 ] && [ "$(CUEMU)" != 1 ] || { echo "lab-cuda: needs nvcc (CUDA builds)"; exit 1; }
	@$(MAKE) --no-print-directory $(BUILD)/lab/lab_tests $(BUILD)/lab/lab_bench

# The CUDA suite runs first (each test SKIPS, visibly, without a GPU), then the same suite under
# cuemu (CPU emulation of CUDA: runs the kernels and the host code, not a GPU; see
# tests/cuemu/README.md; only where the CUDA headers exist), the CPU suite last.
CUEMU_OK := $(if $(filter 11,$(HAVE_CUDNN)$(HAVE_CUBLAS)),$(if $(wildcard $(CUDA_HOME)/include/cuda_runtime_api.h),1,0),0)
test: deps deps-py
	@$(MAKE) --no-print-directory all $(BUILD)/sqakd_tests $(BUILD)/sqakd_cuda_tests
	@$(MAKE) --no-print-directory test-cuda $(if $(filter 1,$(CUEMU_OK)),test-cuemu,) test-cpu test-py test-torch test-onnx test-tb test-recipe

# The GPU recipe (tools/gpu_recipe.sh) with a tiny budget: on the CUDA backend under cuemu where
# `make test-cuemu` built it, else on the CPU backend
test-recipe: $(BUILD)/sqakd
	OMP_NUM_THREADS=2 bash tools/gpu_recipe_test.sh $(if $(wildcard $(BUILD)/cuemu/sqakd),$(abspath $(BUILD)/cuemu/sqakd) cuda,$(abspath $(BUILD)/sqakd) cpu) $(BUILD)/recipe

# ONNX checked by a real runtime (tools/onnx_e2e.sh): ONNX's own node tests through 'sqakd infer',
# torchvision's resnet18 / mobilenet_v2 / shufflenet_v2 / squeezenet and the zoo's vgg13 imported
# (against onnxruntime), distilled a few steps, exported and run in onnxruntime
# (and, where `make test-cuemu` built it, the same on the CUDA backend under cuemu)
test-onnx: $(BUILD)/sqakd
	SQAKD_BIN=$(abspath $(BUILD)/sqakd) ONNX_E2E_DIR=$(BUILD)/onnx OMP_NUM_THREADS=2 \
	  SQAKD_CUDA_BIN=$(if $(wildcard $(BUILD)/cuemu/sqakd),$(abspath $(BUILD)/cuemu/sqakd),) bash tools/onnx_e2e.sh

# PyTorch round trips (tools/torch_twin_test.py): the quantizers' PyTorch twins (tools/torch_quant.py)
# against the C golden values; students of every quantizer distilled a few steps, their logits from
# 'sqakd eval --dump-logits' against the twin's (load_checkpoint.py --into-torch); a teacher through
# PyTorch and back; the refusals (tensors dropped, normalisation unknown)
test-torch: $(BUILD)/sqakd
	SQAKD_BIN=$(abspath $(BUILD)/sqakd) TORCH_TEST_DIR=$(BUILD)/torch OMP_NUM_THREADS=2 /usr/bin/python3 tools/torch_twin_test.py

# TensorBoard event files of train, resume and multi-student distill read back by the tensorboard
# package (tools/tb_readback.py; skips, saying why, where it is not installed)
test-tb: $(BUILD)/sqakd
	OMP_NUM_THREADS=2 /usr/bin/python3 tools/tb_readback.py $(abspath $(BUILD)/sqakd)

test-cpu: $(BUILD)/sqakd_tests $(BUILD)/sqakd
	SQAKD_BIN=$(abspath $(BUILD)/sqakd) OMP_NUM_THREADS=2 $(BUILD)/sqakd_tests --jobs 1

test-cuda: $(BUILD)/sqakd_cuda_tests
	@set -o pipefail; $(BUILD)/sqakd_cuda_tests --jobs 1 --verbose 2>&1 | grep -E '^\[(SKIP|FAIL|====|----)\]' | grep -v 'Running\|Criterion v'

CUEMU_BINS := sqakd_cuda_tests cuemu_dnn_tests cuemu_exec_tests sqakd
test-cuemu:
	@$(MAKE) --no-print-directory CUEMU=1 BUILD=$(BUILD)/cuemu $(addprefix $(BUILD)/cuemu/,$(CUEMU_BINS))
	@set -o pipefail; for t in cuemu_dnn_tests cuemu_exec_tests sqakd_cuda_tests; do \
	  echo "cuemu: $$t (CUDA code run on the CPU emulation, not on a GPU)"; \
	  $(BUILD)/cuemu/$$t --jobs 1 2>&1 | grep -E '^\[(SKIP|FAIL|====|----)\]' | grep -v 'Running\|Criterion v' || exit 1; \
	done

# Sanitizer runs (not part of `make test`: ~20 minutes on 2 cores): the CPU suite and the CUDA
# suite under cuemu (where device buffers are heap blocks: memcheck of the kernels), built with
# AddressSanitizer, UndefinedBehaviorSanitizer (float-cast-overflow included: out-of-range
# double-to-int casts) and LeakSanitizer. test-san is the short subset CI runs on every change:
# the parsers, the CLI's error paths, run directories, checkpoints, reports and sweeps. Criterion's
# --no-early-exit lets each test's process return from main, so LeakSanitizer checks it.
SAN_FLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=undefined,float-cast-overflow \
  -fno-omit-frame-pointer -g
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0
SAN_SUITES := safetensors json onnx_io data cli runs report sweep model multi quant tensorboard
memcheck:
	@$(MAKE) --no-print-directory CUDA=0 BUILD=$(BUILD)/asan CFLAGS="$(SAN_FLAGS)" $(BUILD)/asan/sqakd $(BUILD)/asan/sqakd_tests
	@$(MAKE) --no-print-directory CUEMU=1 BUILD=$(BUILD)/cuemu-asan CFLAGS="$(SAN_FLAGS)" CXXFLAGS="$(SAN_FLAGS)" \
	  $(BUILD)/cuemu-asan/sqakd_cuda_tests
	$(SAN_ENV) $(BUILD)/cuemu-asan/sqakd_cuda_tests --jobs 1 --no-early-exit
	SQAKD_BIN=$(abspath $(BUILD)/asan/sqakd) $(SAN_ENV) OMP_NUM_THREADS=2 $(BUILD)/asan/sqakd_tests --jobs 1 --no-early-exit

test-san:
	@$(MAKE) --no-print-directory CUDA=0 BUILD=$(BUILD)/asan CFLAGS="$(SAN_FLAGS)" $(BUILD)/asan/sqakd $(BUILD)/asan/sqakd_tests
	@t0=$$(date +%s); for s in $(SAN_SUITES); do \
	  SQAKD_BIN=$(abspath $(BUILD)/asan/sqakd) $(SAN_ENV) OMP_NUM_THREADS=2 $(BUILD)/asan/sqakd_tests --jobs 1 --no-early-exit \
	    --filter "$$s/*" > $(BUILD)/asan/san_$$s.log 2>&1; rc=$$?; \
	  grep -E '^\[(FAIL|====)\]|ERROR: |runtime error' $(BUILD)/asan/san_$$s.log; \
	  if [ $$rc != 0 ] || grep -qE '^\[FAIL\]|ERROR: |runtime error' $(BUILD)/asan/san_$$s.log; then \
	    echo "test-san: suite $$s failed under the sanitizers (log: $(BUILD)/asan/san_$$s.log)"; exit 1; fi; \
	done; echo "test-san: sanitized subset ($(SAN_SUITES)) passed in $$(( $$(date +%s) - t0 )) s"

# Random kill -9 points in train, distill and multi-student distill runs, each resumed and
# compared byte for byte with an uninterrupted run (KILLS=20 per command; a few minutes).
test-crash: all
	SQAKD_BIN=$(abspath $(BUILD)/sqakd) OMP_NUM_THREADS=2 bash tools/crash_campaign.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@bash tools/demo.sh

bench: all
	@SQAKD_BIN=$(abspath $(BUILD)/sqakd) bash tools/bench.sh
	@$(MAKE) --no-print-directory bench-ops

# The op-table conformance harness's timing mode (tests/bench_backend_ops.c includes
# tests/test_cuda_backend_ops.c and runs its rows at their bench shapes): time per call and GB/s
# per op on the CPU backend (THREADS, default 2) and, where a GPU is usable, on CUDA. Not a test.
$(BUILD)/bench_backend_ops: $(BUILD)/obj/tests/bench_backend_ops.o $(patsubst %.c,$(BUILD)/obj/%.o,$(TEST_UTIL)) \
                            $(BUILD)/libsqakd.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcriterion $(LIBS)

bench-ops: $(BUILD)/bench_backend_ops
	@OMP_NUM_THREADS=$${THREADS:-2} $(BUILD)/bench_backend_ops --jobs 1 2>&1 | grep -v '^\[\(----\|====\)\]'

clean:
	rm -rf $(BUILD)

include tests/fuzz/fuzz.mk

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
