# tune - build with `make`; `make test` builds under AddressSanitizer and
# UndefinedBehaviorSanitizer and runs the whole suite. See README.md.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -std=c11 -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
CPPFLAGS += -Isrc -Ibuild/gen
OMP     := -fopenmp
LIBS    := -lcjson -lopenblas -lpcre2-8 -lutf8proc -lyaml -lm

SRCS    := $(shell find src -name '*.c' | sort)
# Release objects: build/release, or build/release-cuda with CUDA=1 (the C
# files that hold device code paths are compiled with -DTN_CUDA there).
R       := build/release
ifeq ($(CUDA),1)
R       := build/release-cuda
endif
LIBSRCS := $(filter-out src/cli/main.c,$(SRCS))
PRESETS := $(sort $(wildcard src/model/presets/*.json))
DEMO    := $(sort $(wildcard src/demo/*.json src/demo/*.jsonl))

REL_OBJS  := $(patsubst %.c,$(R)/%.o,$(LIBSRCS)) $(R)/gen/presets_data.o $(R)/gen/demo_data.o
TEST_OBJS := $(patsubst %.c,build/test/%.o,$(LIBSRCS)) build/test/gen/presets_data.o build/test/gen/demo_data.o

# `make CUDA=1`: the CUDA backend (src/nn/cuda/*.cu, nn/backend.h) built for
# sm_90 (Hopper) and linked into tune with cudart and cuBLASLt; docs/cuda.md.
# Without it nothing needs nvcc or a GPU.
NVCC      ?= nvcc
CUDA_HOME ?= /usr/local/cuda
NVCCFLAGS ?= -O2 -g -std=c++17 -arch=sm_90 -Xcompiler -Wall,-Wextra,-Wno-unused-parameter
CU_SRCS   := $(sort $(wildcard src/nn/cuda/*.cu))
CU_OBJS   := $(patsubst %.cu,build/cuda/%.o,$(CU_SRCS))
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcudart -lstdc++
ifeq ($(CUDA),1)
REL_OBJS  += $(CU_OBJS)
LIBS      += $(CUDA_LIBS)
CPPFLAGS  += -DTN_CUDA
endif

SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(patsubst tests/unit/%.c,build/test/unit/%,$(UNIT_SRCS))

.PHONY: all test unit e2e clean demo
all: tune

tune: $(REL_OBJS) $(R)/src/cli/main.o
	$(CC) $(CFLAGS) $(OMP) -o $@ $^ $(LIBS)

build/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -o $@ $<

build/gen/presets_data.c: build/tools/embed $(PRESETS) src/util/embedded.h
	@mkdir -p $(dir $@)
	build/tools/embed $@ tn_preset_files $(PRESETS)

build/gen/demo_data.c: build/tools/embed $(DEMO) src/util/embedded.h
	@mkdir -p $(dir $@)
	build/tools/embed $@ tn_demo_files $(DEMO)

$(R)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(OMP) -MMD -MP -c -o $@ $<

$(R)/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

build/test/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) -O1 -g $(SAN) $(OMP) -MMD -MP -c -o $@ $<

build/test/gen/%.o: build/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O1 -c -o $@ $<

build/test/tune: $(TEST_OBJS) build/test/src/cli/main.o
	$(CC) $(SAN) $(OMP) -o $@ $^ $(LIBS)

build/test/unit/%: tests/unit/%.c $(TEST_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) -O1 -g $(SAN) $(OMP) -o $@ $< $(TEST_OBJS) -lcmocka $(LIBS)

# The suite: cmocka unit tests and end-to-end command tests, all on the
# sanitizer build. tests/run.sh prints "N passed, N failed" and exits non-zero
# on any failure.
test: build/test/tune $(UNIT_BINS) tune
	tests/run.sh $(UNIT_BINS)

demo: tune
	./tune demo

# `make bench-ops`: OpenBLAS's sgemm rate and the attention and loss kernels'
# times (bench/ops_bench.c); linked with the operations alone.
OPS_BENCH_OBJS := $(filter $(R)/src/nn/cpu/%,$(REL_OBJS)) $(R)/src/util/rng.o $(R)/src/util/error.o
$(R)/bench/ops_bench: bench/ops_bench.c $(OPS_BENCH_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(OMP) -o $@ $< $(OPS_BENCH_OBJS) $(LIBS)

.PHONY: bench-ops
bench-ops: $(R)/bench/ops_bench
	$(R)/bench/ops_bench

clean:
	rm -rf build tune

-include $(shell find build -name '*.d' 2>/dev/null)

# `make bench-train MODEL=DIR`: LoRA step speed and memory of the CPU engine
# (bench/train_bench.c) on a model folder, e.g. one made by
# `./tune init qwen2.5-0.5b-instruct --out /tmp/qwen05`.
$(R)/bench/train_bench: bench/train_bench.c $(REL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(OMP) -o $@ $< $(REL_OBJS) $(LIBS)

.PHONY: bench-train
bench-train: $(R)/bench/train_bench
	$(R)/bench/train_bench $(MODEL) 512 1 3

# The CUDA objects (needs nvcc, not a GPU). `make cuda-objs` compiles them alone.
build/cuda/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) -Isrc $(NVCCFLAGS) -MMD -MP -c -o $@ $<

.PHONY: cuda-objs check-gpu
cuda-objs: $(CU_OBJS)

# `make check-gpu` (on the GPU machine): every CUDA operation against the CPU
# reference (tests/gpu/check_gpu.c), linked with the operations alone so it
# needs only OpenBLAS and the CUDA libraries.
CHECK_GPU_OBJS := $(filter $(R)/src/nn/cpu/%,$(REL_OBJS)) $(R)/src/nn/flash_plan.o $(R)/src/util/rng.o $(R)/src/util/error.o $(R)/src/train/optim.o
$(R)/tests/gpu/check_gpu: tests/gpu/check_gpu.c $(CHECK_GPU_OBJS) $(CU_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(OMP) -o $@ $< $(CHECK_GPU_OBJS) $(CU_OBJS) -lopenblas -lm $(CUDA_LIBS)

# The training step on the device against the CPU engine, on the fixtures
# (tests/gpu/check_train_gpu.c), and the benchmark of bench/gpu_train_bench.sh:
# linked with everything, so they need the libraries tune needs.
$(R)/tests/gpu/check_train_gpu: tests/gpu/check_train_gpu.c $(REL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(OMP) -o $@ $< $(REL_OBJS) $(LIBS)
$(R)/bench/gpu_train_bench: bench/gpu_train_bench.c $(REL_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) $(OMP) -o $@ $< $(REL_OBJS) $(LIBS)
GPU_FAMILIES := llama mistral qwen2 gemma2 granite

check-gpu: $(R)/tests/gpu/check_gpu $(R)/tests/gpu/check_train_gpu tune
	$(R)/tests/gpu/check_gpu
	for f in $(GPU_FAMILIES); do ./tune init tests/gpu/configs/$$f.json --out build/gpu-models/$$f >/dev/null || exit 1; done
	$(R)/tests/gpu/check_train_gpu $(addprefix build/gpu-models/,$(GPU_FAMILIES))
	TUNE=./tune tests/gpu/train_gpu.sh

# `make test` also compiles the CUDA objects where nvcc is installed (CI has
# it; no GPU is needed to compile).
# The C files with device code paths (#ifdef TN_CUDA) are compiled that way
# too, so that CI sees their errors; linking them needs the GPU machine's build.
CUDA_C_SRCS := $(shell grep -rl --include='*.c' TN_CUDA src tests bench 2>/dev/null | sort)
CUDA_C_OBJS := $(patsubst %.c,build/cuda-c/%.o,$(CUDA_C_SRCS))
build/cuda-c/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -DTN_CUDA -I$(CUDA_HOME)/include $(WARN) $(CFLAGS) $(OMP) -MMD -MP -c -o $@ $<
.PHONY: cuda-c-objs
cuda-c-objs: $(CUDA_C_OBJS)
ifneq ($(shell command -v $(NVCC) 2>/dev/null),)
test: cuda-objs cuda-c-objs
endif

# `make CUDA=1 gpu-bundle` (on the development machine): tune, the check
# programs and the benchmark, stripped, with the libraries the GPU machine
# lacks, in build/gpu-bundle; carry that folder and run
# tests/gpu/check_bundle.sh there (docs/cuda.md).
GPU_BUNDLE_LIBS := libcjson.so.1 libpcre2-8.so.0 libutf8proc.so.2 libyaml-0.so.2
.PHONY: gpu-bundle
gpu-bundle: tune $(R)/tests/gpu/check_gpu $(R)/tests/gpu/check_train_gpu $(R)/bench/gpu_train_bench
	@test "$(CUDA)" = 1 || { echo "gpu-bundle: run as make CUDA=1 gpu-bundle"; exit 1; }
	rm -rf build/gpu-bundle && mkdir -p build/gpu-bundle/lib
	cp tune $(R)/tests/gpu/check_gpu $(R)/tests/gpu/check_train_gpu $(R)/bench/gpu_train_bench build/gpu-bundle/
	strip build/gpu-bundle/tune build/gpu-bundle/check_gpu build/gpu-bundle/check_train_gpu build/gpu-bundle/gpu_train_bench
	for l in $(GPU_BUNDLE_LIBS); do cp -L "$$(ldconfig -p | awk -v l=$$l '$$1 == l {print $$NF; exit}')" build/gpu-bundle/lib/ || exit 1; done
	if [ -f ../shared/bench/hf_peft_baseline.py ]; then cp ../shared/bench/hf_peft_baseline.py build/gpu-bundle/; fi
	du -sh build/gpu-bundle

ifeq ($(CUDA),1)
# The older path of the GPU check, kept working for scripts that name it.
build/release/tests/gpu/check_gpu: $(R)/tests/gpu/check_gpu
	@mkdir -p $(dir $@)
	cp $< $@
endif
