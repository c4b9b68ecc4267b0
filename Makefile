# kmsbridge: see README.md. `make test` and `make demo` install what they need.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
GOFLAGS ?= -buildvcs=false
export GOFLAGS

.PHONY: all build deps test unit lint demo bench fuzz clean

all: build

deps:
	@./scripts/install-deps.sh

# The binaries say which commit they are (--version, and every ceremony
# record entry): the same identity `make release` stamps.
# Every command of ./cmd: kmsbridge, the emulators and softhsm-token (the
# README's walkthrough uses them all from bin/).
build:
	$(GO) build -ldflags "$$(./scripts/buildvars.sh --ldflags)" -o bin/ ./cmd/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd test && $(GO) vet ./...

# Every test, including the end-to-end ones that drive the built binaries
# against SoftHSM2 and the emulators on 127.0.0.1. Plain `go test` also runs
# every fuzz target's seed corpus (testdata/fuzz/...). test/ is a Go module
# of its own (it keeps local-kms and its dependencies out of go.mod), so it
# runs explicitly.
#
# Vet runs once: lint runs `go vet` (every analyzer) on both modules before
# any test, so the tests run with -vet=off. `go test`'s own vet is a subset
# of the same analyzers (atomic, bools, buildtag, directive, errorsas,
# ifaceassert, nilfunc, printf, slog, stringintconv, tests) over the same
# files, and with its different analyzer set it computed every dependency's
# vet facts a second time. Test binaries link without DWARF (-ldflags=-w):
# stack traces and -race reports do not use it, and it was a third to two
# thirds of each link's CPU. BENCHMARKS.md, "Test suite CPU (2026-12-08)",
# has the figures.
#
# The race detector runs where the code it checks runs in the test process
# and that code is concurrent: the root module's packages listed in
# internal/racelist/packages.txt (whose test fails when a package gains a
# goroutine, sync, a server or parallel tests without being listed; the
# others' tests run without -race), and test/opencryptoki and test/localkms
# (concurrent PKCS#11 sessions and an in-process server). test/e2e and test/readme drive
# separate kmsbridge and emulator binaries, which -race on the test binary
# does not instrument, so they run without it (a quarter less CPU), and the
# e2e tests whose kmsbridge runs work concurrently (E2E_RACE_CLI_TESTS) run
# again with kmsbridge itself built with -race (KMSBRIDGE_E2E_RACE_CLI=1),
# where a data race fails the test. docs/contributing.md has the figures.
#
# Every emulator the suite starts takes its RSA key pairs (AWS wrapping keys,
# Google import-job keys, Azure KEKs) from one test key cache for the whole
# run (KMSBRIDGE_EMULATOR_KEY_CACHE, see internal/emukeys): a pair is
# generated once per run of make test instead of once per request, the
# suite's largest CPU cost once, and an emulator hands a pair out again only
# after KmsBridgeResetRegion forgot everything it served (the exactly-once
# suites run each scenario in a Region reset after it).
#
# test/e2e's tests are t.Parallel() and mostly wait (on subprocesses,
# emulator polling, injected hangs), so the package runs 8 at a time: on a
# machine shared with other work, more runnable tests also take a fairer
# share of the CPUs.
#
# The binaries the tests run (kmsbridge, the emulators, every ./cmd/... for
# the README test) are built once, into the run's directory, and named to
# test/e2e and test/readme by KMSBRIDGE_TEST_BIN_DIR: each test binary
# linking its own copies cost seconds of CPU per package (kmsbridge's cgo
# link alone 6 CPU-s). The race-detector e2e run gets a -race kmsbridge
# beside the same emulators.
#
# The tests' temporary files (SoftHSM2 and NSS tokens, state directories,
# journals, records) go to a directory of the run on /dev/shm where it is a
# writable tmpfs: the tokens' file stores write a file per object, and on a
# busy disk those writes, not the CPU, were most of test/scale's time and a
# large part of test/e2e's. The directory is removed at the end.
#
# The root module's unit tests run beside the test/ module's steps (their
# output is printed when they end): the e2e tests mostly wait on
# subprocesses, tokens and the emulators, the unit tests mostly compute,
# so together they keep the CPUs busy where one after the other left them
# idle.
E2E_RACE_CLI_TESTS := ^(TestBulkImport|TestCeremonyRunParallel$$|TestExactlyOnceConcurrentCeremonies$$|TestConcurrentGenerateOfOneLabel$$)
RACE_TEST_PKGS := ./opencryptoki ./localkms
RACE_UNIT_PKGS = $(shell grep -o '^\./[^ ]*' internal/racelist/packages.txt)
TESTFLAGS := -vet=off -ldflags=-w
test: deps lint
	@# Every step runs even when one before it failed: a failure says all it can.
	@tmp=$$( { [ -d /dev/shm ] && [ -w /dev/shm ] && mktemp -d /dev/shm/kmsbridge-test.XXXXXX; } || mktemp -d ) || exit 1; \
	trap 'rm -rf "$$tmp"' EXIT; \
	export TMPDIR="$$tmp" KMSBRIDGE_EMULATOR_KEY_CACHE="$$tmp/emulator-keys"; set -x; rc=0; \
	( urc=0; $(GO) test $(TESTFLAGS) -race -count=1 -timeout 14m $(RACE_UNIT_PKGS) || urc=1; \
	  $(GO) test $(TESTFLAGS) -count=1 -timeout 14m $$($(GO) list ./... | grep -vxF "$$($(GO) list $(RACE_UNIT_PKGS))") || urc=1; \
	  echo $$urc >"$$tmp/unit.rc" ) >"$$tmp/unit.log" 2>&1 & unit=$$!; \
	$(GO) build -o "$$tmp/bin/" ./cmd/... && $(GO) build -race -o "$$tmp/bin-race/kmsbridge" ./cmd/kmsbridge && \
	ln -s "$$tmp/bin/kms-emulator" "$$tmp/bin/gcp-kms-emulator" "$$tmp/bin-race/" || rc=1; \
	export KMSBRIDGE_TEST_BIN_DIR="$$tmp/bin"; \
	cd test && \
	{ $(GO) test $(TESTFLAGS) -race -count=1 -timeout 20m $(RACE_TEST_PKGS) || rc=1; } && \
	{ $(GO) test $(TESTFLAGS) -count=1 -timeout 30m -parallel 8 -skip '$(E2E_RACE_CLI_TESTS)' \
	  $$($(GO) list ./... | grep -v '/test/\(opencryptoki\|localkms\)$$') || rc=1; } && \
	{ KMSBRIDGE_E2E_RACE_CLI=1 KMSBRIDGE_TEST_BIN_DIR="$$tmp/bin-race" $(GO) test $(TESTFLAGS) -race -count=1 -timeout 20m -parallel 4 -run '$(E2E_RACE_CLI_TESTS)' ./e2e || rc=1; }; \
	wait $$unit; echo "== the root module's unit tests (internal/racelist's packages with -race, the rest without):"; cat "$$tmp/unit.log"; \
	[ "$$(cat "$$tmp/unit.rc")" = 0 ] || rc=1; \
	exit $$rc

demo: deps build
	@./scripts/demo.sh

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	# Bulk imports, the floor, the documented flow, quotas, RSS, record
	# verify, growth: one Markdown report (BENCHMARKS.md says how to read it).
	cd test && $(GO) build -o ../bin/bulkbench ./bench/bulkbench
	cd test && $(GO) build -o ../bin/floor ./bench/floor
	./bin/bulkbench -kmsbridge bin/kmsbridge -emulator bin/kms-emulator $(BENCHFLAGS) | tee bin/bench-report.md

# Each native Go fuzz target for FUZZTIME (default 20s), one after another.
FUZZTIME ?= 20s
FUZZ_TARGETS := \
	./kmsimport/aws:FuzzReadTransferFiles ./kmsimport:FuzzParseWrappingPublicKey ./kmsimport/aws:FuzzRules \
	./ceremony:FuzzParse ./record:FuzzVerify \
	./kmsemu:FuzzParseMaterial ./kmsemu:FuzzServeHTTP
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; echo "== $$pkg $$name ($(FUZZTIME))"; \
	  $(GO) test $$pkg -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME); \
	done

clean:
	rm -rf bin dist

# Release targets: docs, release, verify-release, release-test.
.PHONY: docs release verify-release release-test

# Man pages, completion and docs/cli-reference.md come from the CLI's own
# definitions; run after changing a command or flag, and commit the result.
docs:
	$(GO) run ./cmd/kmsbridge gen-docs --reference docs/cli-reference.md

# A reproducible release of the checked-out commit into dist/ (see README,
# "Installing" and "Verifying a release"). Not part of make test: the
# cross build and the package install take minutes.
release:
	@./scripts/release.sh

# Builds the commit twice, in two fresh clones at different times with
# cold caches, and compares SHA256SUMS byte for byte.
verify-release:
	@./scripts/verify-release.sh

# Installs dist's amd64 .deb with dpkg -i, runs it, checks its files, and
# removes it with dpkg -r (needs root; builds dist/ first when missing).
release-test:
	@./scripts/release-test.sh
