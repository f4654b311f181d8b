# The README's two commands are `make run` and `make test`.
GO      ?= go
BROWSER := cmd/webauthnd/testdata/browser
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-deps build vet bench

## run: start webauthnd on http://localhost:8080 with its embedded default (./data)
run:
	$(GO) run ./cmd/webauthnd serve

## test: install what the tests need, then vet and run every test with the race detector
test: test-deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

## test-deps: Chromium (Debian package) and playwright-core for the browser test
test-deps:
	@command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	@[ -d $(BROWSER)/node_modules/playwright-core ] || npm ci --prefix $(BROWSER) --no-audit --no-fund

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

build:
	$(GO) build -o bin/webauthnd ./cmd/webauthnd

## bench: drive ceremonies against a running server (make run), e.g. make bench BENCH='--users 32 --duration 30s --pid PID'
bench:
	$(GO) run ./bench $(BENCH)

## fuzz: run every fuzz target for FUZZTIME on top of its seeds (make test runs the seeds alone)
FUZZTIME ?= 10s
.PHONY: fuzz
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$target ($$pkg) for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1s $$pkg; \
		done; \
	done
