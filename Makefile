# The two commands of the README, and a few more for development.
.PHONY: run release pgo test lint mock bench

# Run sluice in its embedded default: admin :8080, proxy :8081, mcp :8082, SQLite in ./data.
# The release build is profile-guided with the committed profile (scripts/pgo-flags.sh).
run:
	@scripts/deps.sh
	RUSTFLAGS="$$(scripts/pgo-flags.sh)" cargo run --release --bin sluice -- all

# The release binary alone, as `make run` builds it: target/release/sluice.
release:
	@scripts/deps.sh
	RUSTFLAGS="$$(scripts/pgo-flags.sh)" cargo build --release --bin sluice

# Retake the profile of the profile-guided build (after a change to the request path).
pgo:
	@scripts/deps.sh
	@scripts/loadtest-deps.sh
	python3 loadtest/pgo.py

# The whole test suite, as CI runs it: formatting, lints, then every test against the
# real local PostgreSQL and Redis (installed and started when missing), the official
# OpenAI and Anthropic SDKs included (installed into ./.venv-sdk when missing).
test:
	@scripts/deps.sh
	@scripts/services.sh
	@scripts/sdk-venv.sh
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else \
		cargo test --workspace --no-fail-fast; \
	fi
	@scripts/loadtest-deps.sh
	@scripts/pgo-flags.sh --check >/dev/null
	python3 loadtest/run.py --smoke
	@if command -v node >/dev/null 2>&1; then \
		for f in loadtest/k6/*.js; do node --input-type=module --check < $$f || exit 1; done; \
	fi

# Every load-test scenario against the floors, release build (see loadtest/run.py).
bench:
	@scripts/deps.sh
	@scripts/loadtest-deps.sh
	python3 loadtest/run.py

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# The mock provider on 127.0.0.1:9000 (OpenAI wire format), for the README walkthrough.
mock:
	cargo run --release -p sluice-loadtest --bin mock-provider -- --addr 127.0.0.1:9000
