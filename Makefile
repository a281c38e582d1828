# rootcellar: the two front-door commands, plus the benchmark.
#   make demo   install what is missing, build, run a rehearsal on a throwaway SoftHSM2 token
#   make test   install what is missing, run every test: cargo test, the same test binaries again
#               with the clock 40 and 400 days ahead (faketime), TEST_CRASH_ROUNDS kill-anywhere
#               rounds, then the appliance image's (build it, boot it under QEMU, rehearse from
#               its console, rebuild and compare)
#   make bench  signing throughput of the key backend against raw PKCS#11, TUF verification
#               against python-tuf and tuftool, a rehearsed root-init against the same PKCS#11
#               calls made bare, `make demo` on the built tree, and the appliance's boot against a
#               bare kernel (make image-bench)
OUT ?= demo-out

.PHONY: deps build demo test bench lint

deps:
	./scripts/install-deps.sh

build: deps
	cargo build --locked

demo: build
	./scripts/demo.sh "$(OUT)"

# The image part is `make image-test` except that a pinned Debian package the archive has
# dropped since (a security update superseded it) does not fail the build: build.sh warns, naming
# it, and builds and rebuilds from its current version in a scratch lock. `make image` stays
# strict. Each command's failure stops make; image_test.py's last line is its summary.
test: deps
	cargo test --locked --features test-hooks
	./scripts/test-shifted-clock.sh +40d +400d
	ROOTCELLAR_CRASH_ROUNDS=$(TEST_CRASH_ROUNDS) $(CRASH_TEST_RUN)
	./images/install-deps.sh
	./images/build.sh --allow-superseded
	python3 images/test/image_test.py

bench: deps
	@# Cargo.toml keeps debug assertions on for yubihsm alone in this profile: its MockHsm (a
	@# dev-dependency, which benches build) refuses to compile without them.
	cargo bench --locked --bench sign_throughput
	@# tuftool, the third TUF client tuf_verify compares: built once (about 13 minutes here) into a
	@# cache outside the tree. If that fails, the bench says tuftool was not compared and goes on.
	./scripts/install-tuftool.sh >/dev/null || true
	cargo bench --locked --bench tuf_verify
	cargo bench --locked --bench root_init_floor
	./scripts/demo-bench.sh
	@# The appliance's boot to its console against a bare kernel + busybox: make image-bench,
	@# built as make test builds it (a package the Debian archive has superseded only warns).
	./images/install-deps.sh
	./images/build.sh --allow-superseded
	python3 images/test/bench.py 5

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo clippy --locked --all-targets --features test-hooks -- -D warnings

# Kill-anywhere: the eight ceremony scripts rehearsed in sequence on one appliance, each killed
# with SIGKILL at random moments and resumed, ROUNDS times (ROOTCELLAR_CRASH_SEED=N repeats a
# run; a failed round's directory is kept). make test runs TEST_CRASH_ROUNDS of them (about
# 2 minutes here, after the shifted-clock runs: an ignored test, so faketime does not repeat it).
ROUNDS ?= 200
TEST_CRASH_ROUNDS ?= 30
CRASH_TEST_RUN = cargo test --locked --features test-hooks --test softhsm crash::ceremonies_killed -- --ignored --nocapture
.PHONY: crash-test
crash-test: deps
	ROOTCELLAR_CRASH_ROUNDS=$(ROUNDS) $(CRASH_TEST_RUN)

# Fuzz what comes from outside, one target after another: the bundle decoder, journal
# segments, the TUF client over hostile metadata, CSRs, ceremony scripts and answers files, and
# a request's entries laid out for the scripts' inputs (`make fuzz FUZZ_TARGETS=...` runs some).
# Each runs FUZZ_SECONDS, or FUZZ_RUNS executions when that is set (the README's figures:
# `make fuzz FUZZ_RUNS=10000000`). No sanitizer by default: rootcellar forbids unsafe code, and
# without ASan the targets run 3-5x faster (`FUZZ_SANITIZER=address` puts it back).
# cargo-fuzz on the stable toolchain: RUSTC_BOOTSTRAP=1 lets it pass its -Z flags. The fuzz
# crate is its own workspace under fuzz/, so `make test` never builds it; new inputs join
# fuzz/corpus/TARGET, where only the seeds (seed-*) are committed. A finding is written to
# fuzz/artifacts/TARGET/ and stops the run.
FUZZ_SECONDS ?= 300
FUZZ_RUNS ?=
FUZZ_SANITIZER ?= none
FUZZ_TARGETS ?= bundle_decode journal_segment tuf_verify csr_parse ceremony_input request_layout
FUZZ_LIMIT = $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_SECONDS))
.PHONY: fuzz
fuzz:
	command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
	set -e; for target in $(FUZZ_TARGETS); do \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s $(FUZZ_SANITIZER) $$target -- \
	    $(FUZZ_LIMIT) -max_len=65536 -print_final_stats=1); \
	done

# The appliance image (images/README.md); `make test` runs the image test too.
#   make image        install what is missing, build the bootable image (prints its SHA-256)
#   make image-test   boot it under QEMU (TCG), rehearse from the console, check the outputs,
#                     rebuild and compare hashes
#   make image-bench  boot time against a bare kernel + busybox baseline
.PHONY: image image-test image-bench

image:
	./images/install-deps.sh
	./images/build.sh

image-test: image
	python3 images/test/image_test.py

image-bench: image
	python3 images/test/bench.py 5
