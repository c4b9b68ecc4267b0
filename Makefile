# kmsbridge: see README.md. `make test` and `make demo` install what they need.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
GOFLAGS ?= -buildvcs=false
export GOFLAGS

.PHONY: all build deps test unit lint demo bench clean

all: build

deps:
	@./scripts/install-deps.sh

build:
	$(GO) build -o bin/kmsbridge ./cmd/kmsbridge
	$(GO) build -o bin/kms-emulator ./cmd/kms-emulator

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd test && $(GO) vet ./...

# Every test, including the end-to-end ones that drive the built binaries
# against SoftHSM2 and the emulator on 127.0.0.1. test/ is a Go module of its
# own (it keeps local-kms and its dependencies out of go.mod), so it runs
# explicitly.
test: deps lint
	$(GO) test -count=1 -timeout 14m ./...
	cd test && $(GO) test -count=1 -timeout 14m ./...

demo: deps build
	@./scripts/demo.sh

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	# Bulk imports, the floor, the documented flow, quotas, RSS, record
	# verify, growth: one Markdown report (BENCHMARKS.md says how to read it).
	cd test && $(GO) build -o ../bin/bulkbench ./bench/bulkbench
	./bin/bulkbench -kmsbridge bin/kmsbridge -emulator bin/kms-emulator $(BENCHFLAGS) | tee bin/bench-report.md

clean:
	rm -rf bin
