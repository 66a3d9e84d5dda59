# fuzz.mk (included by the Makefile): libFuzzer harnesses of every parser, tests/fuzz/fuzz_*.c
# (see tests/fuzz/README.md).
#   make fuzz          builds them and runs each for FUZZ_SECONDS (default 120) from its seed
#                      corpus tests/fuzz/corpus/NAME (new inputs go to a scratch folder); one line
#                      per harness, the same in $(BUILD)/fuzz/summary.txt; fails on any finding
#   make fuzz-ci       the same with 30 s per harness (what CI runs); builds what it needs
#   make fuzz-corpus   regenerates the committed seed corpora (tests/fuzz/make_corpus.c)
# The harnesses and the library under them are compiled by clang with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer (UB aborts, so it counts as a finding), CPU only, in
# $(BUILD)/fuzz: a sub-make of this Makefile with BUILD=$(BUILD)/fuzz builds them there.

FUZZ_SECONDS ?= 120
FUZZ_CC ?= clang
FUZZ_NAMES := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
# -Wno-pass-failed: clang cannot vectorise some '#pragma omp simd' loops once instrumented
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
  -fno-omit-frame-pointer -g -Wno-pass-failed
FUZZ_SUB = $(MAKE) --no-print-directory FUZZ_INNER=1 CUDA=0 CC=$(FUZZ_CC) CFLAGS="$(FUZZ_SAN)" BUILD=$(BUILD)/fuzz

.PHONY: fuzz fuzz-ci fuzz-build fuzz-corpus
fuzz: deps
	+@$(FUZZ_SUB) $(addprefix $(BUILD)/fuzz/bin/fuzz_,$(FUZZ_NAMES))
	@bash tests/fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS) $(FUZZ_NAMES)

fuzz-ci:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30

fuzz-build:
	+@$(FUZZ_SUB) $(addprefix $(BUILD)/fuzz/bin/fuzz_,$(FUZZ_NAMES))

fuzz-corpus:
	+@$(FUZZ_SUB) $(BUILD)/fuzz/bin/make_corpus
	rm -rf tests/fuzz/corpus
	ASAN_OPTIONS=detect_leaks=1 $(BUILD)/fuzz/bin/make_corpus tests/fuzz/corpus
	@du -sh tests/fuzz/corpus

ifeq ($(FUZZ_INNER),1)
# inside the sub-make: BUILD is $(BUILD)/fuzz of the caller; the harness objects are kept
.SECONDARY: $(patsubst tests/fuzz/%.c,$(BUILD)/obj/tests/fuzz/%.o,$(wildcard tests/fuzz/*.c))
$(BUILD)/bin/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(BUILD)/libsqakd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

$(BUILD)/bin/make_corpus: $(BUILD)/obj/tests/fuzz/make_corpus.o $(BUILD)/libsqakd.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)
endif
