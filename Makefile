# qsr -- design-space explorer for quantization x sparse attention x routing.
#
#   make            build ./qsr (needs the libraries: `make deps` installs them)
#   make deps       apt-get install what is missing (Debian/Ubuntu)
#   make test       deps + build + CUnit suites
#   make sanitize   the suites under AddressSanitizer + UBSan
#   make demo       deps + build + the main job on the bundled configs: sweep ->
#                   Pareto table -> plot -> deployment config -> a simulated serving run
#   make bench      speed figures of the cost model (printed, not asserted)
#   make validate-host  the loop on this machine's CPU: bench -> calibrate -> validate -> run
#                   (tinyllama-1.1b, 4-bit) and the validation figures (a few minutes on 2 cores)
#
# CUDA: .cu files under kernels/cuda/ are built with nvcc when it is found
# (PATH or /usr/local/cuda/bin); everything else builds without it.

CC      ?= cc
CFLAGS  ?= -O2 -g
CWARNS   = -Wall -Wextra -Wshadow -Wundef -Wwrite-strings -Wstrict-prototypes -Wmissing-prototypes
PKGS     = gsl yaml-0.1 sqlite3
# recursive (=) so that pkg-config runs after `make deps` has installed things
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lgsl -lgslcblas -lyaml -lsqlite3)
ALL_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -I. $(CWARNS) $(PKG_CFLAGS) $(CFLAGS) $(XCFLAGS)
LDLIBS_ALL = $(PKG_LIBS) -lm -lpthread $(XLDFLAGS)

BUILD   ?= build
LIB_SRCS = $(wildcard util/*.c kernels/*.c kernels/cpu/*.c costmodel/*.c spec/*.c sim/*.c store/*.c)
CLI_SRCS = $(wildcard cli/*.c)
TEST_SRCS = $(wildcard tests/*.c)
BENCH_SRCS = $(wildcard bench/*.c)
LIB_OBJS = $(LIB_SRCS:%.c=$(BUILD)/%.o)
CLI_OBJS = $(CLI_SRCS:%.c=$(BUILD)/%.o)
TEST_OBJS = $(TEST_SRCS:%.c=$(BUILD)/%.o)
BENCH_OBJS = $(BENCH_SRCS:%.c=$(BUILD)/%.o)

NVCC    ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CU_SRCS  = $(wildcard kernels/cuda/*.cu)
ifneq ($(and $(NVCC),$(CU_SRCS)),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
NVFLAGS  = -O2 -std=c++17 -I. -gencode arch=compute_80,code=sm_80 -gencode arch=compute_87,code=sm_87 \
           -gencode arch=compute_89,code=sm_89 -gencode arch=compute_90,code=sm_90 -Xcompiler -Wall,-Wextra
CU_OBJS  = $(CU_SRCS:%.cu=build/%.o)   # one copy: the sanitizer build links these too
ALL_CFLAGS += -DQSR_HAVE_CUDA=1
LDLIBS_ALL += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart -lstdc++
endif

.PHONY: all deps test sanitize demo bench validate-host clean
all: qsr

qsr: $(CLI_OBJS) $(LIB_OBJS) $(CU_OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/test_all: $(TEST_OBJS) $(LIB_OBJS) $(CU_OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ -lcunit $(LDLIBS_ALL)

$(BUILD)/bench_all: $(BENCH_OBJS) $(LIB_OBJS) $(CU_OBJS)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS_ALL)

# The C kernels are the host backend: optimise them for the machine that
# builds and runs them (vector units, F16C), when the compiler can.
KFLAGS := -O3 $(shell $(CC) -march=native -E -x c /dev/null >/dev/null 2>&1 && echo -march=native)
$(BUILD)/kernels/cpu/%.o: TFLAGS = $(KFLAGS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(TFLAGS) -MMD -MP -c -o $@ $<

build/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -c -o $@ $<

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(BENCH_OBJS:.o=.d) $(CU_OBJS:.o=.d)

DEB_PKGS = build-essential pkg-config libgsl-dev libsqlite3-dev libyaml-dev libcunit1-dev gnuplot-nox
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test: deps
	@$(MAKE) --no-print-directory $(BUILD)/test_all qsr
	./$(BUILD)/test_all

sanitize: deps
	@$(MAKE) --no-print-directory BUILD=build-san XCFLAGS="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  XLDFLAGS="-fsanitize=address,undefined" build-san/test_all
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1:protect_shadow_gap=0 ./build-san/test_all

demo: deps
	@$(MAKE) --no-print-directory qsr
	./qsr predict -d orin-nx-16g -m llama-7b -c configs/designs/ablation-qsr.yaml
	./qsr sweep configs/sweeps/quickstart.yaml
	./qsr pareto results/quickstart.db --objectives tpot_ms,mem_peak_mb,quality_loss
	./qsr plot results/quickstart.db --kind pareto -o plots/quickstart-pareto.png
	./qsr deploy results/quickstart.db --device orin-nx-16g --pick knee -o results/deploy/llama-7b-orin-nx.yaml
	./qsr deploy --check results/deploy/llama-7b-orin-nx.yaml
	rm -f results/simulate-demo.db results/simulate-demo.db-wal results/simulate-demo.db-shm
	./qsr simulate -d orin-agx-64g -m llama-7b -c configs/designs/ablation-qsr.yaml \
	  --trace synthetic:gamma,rate=1,cv=2,n=2000,prompt=lognormal:1000:1,output=exp:200 \
	  --policy continuous,chunked --slo-ttft-ms 2000 --slo-tpot-ms 100 --name demo -o results/simulate-demo.db
	./qsr plot results/simulate-demo.db --kind cdf -o plots/simulate-cdf.png
	./qsr plot results/simulate-demo.db --kind timeline -o plots/simulate-timeline.png

bench: deps
	@$(MAKE) --no-print-directory $(BUILD)/bench_all qsr
	./$(BUILD)/bench_all

VH_DB = results/validate-host.db
validate-host: deps
	@$(MAKE) --no-print-directory qsr
	rm -f $(VH_DB) $(VH_DB)-wal $(VH_DB)-shm
	./qsr bench --quick --quiet -o $(VH_DB)
	./qsr calibrate $(VH_DB) --device host
	./qsr validate $(VH_DB) --device host.calibrated
	./qsr validate $(VH_DB) --device host.calibrated --json --worst 10 > results/validate-host.json
	./qsr plot $(VH_DB) --kind validation -o plots/validate-host.png
	./qsr run results/deploy/tinyllama-1.1b-rpi5-int4.yaml --backend cpu --device host.calibrated -o $(VH_DB)

clean:
	rm -rf build build-san qsr
