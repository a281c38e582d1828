# rootcellar: the two front-door commands, plus the benchmark.
#   make demo   install what is missing, build, run a rehearsal on a throwaway SoftHSM2 token
#   make test   install what is missing, run every test
#   make bench  signing throughput of the key backend against raw PKCS#11
OUT ?= demo-out

.PHONY: deps build demo test bench lint

deps:
	./scripts/install-deps.sh

build: deps
	cargo build --locked

demo: build
	./scripts/demo.sh "$(OUT)"

test: deps
	cargo test --locked

bench: deps
	cargo bench --locked --bench sign_throughput

lint:
	cargo fmt --all -- --check
	cargo clippy --locked --all-targets -- -D warnings
