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

# Every test, including the end-to-end ones that drive the built binaries
# against SoftHSM2 and the emulator on 127.0.0.1.
test: deps lint
	$(GO) test -count=1 -timeout 14m ./...

demo: deps build
	@./scripts/demo.sh

bench: deps
	$(GO) test -run '^$$' -bench . -benchmem ./...

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
