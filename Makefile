# Cascade — the two commands a new user runs on a fresh Debian 12 machine:
#   make demo   installs what is missing, builds, runs the whole pipeline locally
#   make test   installs what is missing, builds, runs every test
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
# Warnings are errors (what CI checks); WERROR=OFF for a compiler newer than Debian 12's.
WERROR ?= ON
JOBS ?= $(shell nproc)

# Debian 12 packages only; nothing is built from source. chromium is for the
# tests only (the dashboard rendered headless); Cascade itself never runs it.
DEBS := cmake ninja-build g++ make pkg-config ccache curl \
        librdkafka-dev nlohmann-json3-dev libcurl4-openssl-dev librocksdb-dev \
        prometheus-cpp-dev libspdlog-dev libyaml-cpp-dev libcli11-dev libboost-dev \
        libssl-dev libpcre2-dev libgtest-dev libgmock-dev libbenchmark-dev libhnswlib-dev libxgboost-dev \
        wordnet-base \
        python3-confluent-kafka python3-jsonschema wrk \
        chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps configure build test demo bench clean

deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# Clients nobody here wrote, for the tests and benchmarks only (package-lock.json pins them).
	@cmp -s package-lock.json node_modules/.cascade-installed 2>/dev/null || \
	  { command -v npm >/dev/null || $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; \
	    npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.cascade-installed; }

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCASCADE_WERROR=$(WERROR)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS) --timeout 600

demo: build
	scripts/demo.sh $(BUILD)/apps/cascade/cascade

bench: build
	$(BUILD)/bench/pipeline/cascade_bench_pipeline

clean:
	rm -rf $(BUILD)
