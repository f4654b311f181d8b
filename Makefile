# The README's two commands are `make run` and `make test`.
GO      ?= go
BROWSER := cmd/webauthnd/testdata/browser
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-deps build vet bench pg-start

## run: start webauthnd on http://localhost:8080 with its embedded default (./data), Prometheus metrics on http://127.0.0.1:9464/metrics
run:
	$(GO) run ./cmd/webauthnd serve --metrics-addr 127.0.0.1:9464

## test: install what the tests need, then vet and run every test with the race detector
test: test-deps vet
	$(GO) test -race -count=1 -timeout 20m ./...

## pg-start: start the machine's PostgreSQL cluster unless it answers on 127.0.0.1 already (CI runs it
## before make test; the PostgreSQL tests skip without it, or fail with WEBAUTHND_REQUIRE_POSTGRES=1).
## pg_isready honours PGPORT; PG_START_CLUSTER names another cluster of the newest installed version.
PG_START_VERSION ?= $(shell ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
PG_START_CLUSTER ?= main
pg-start:
	@pg_isready -h 127.0.0.1 -q 2>/dev/null || { \
		[ -n "$(PG_START_VERSION)" ] || { echo "pg-start: PostgreSQL is not installed (no /etc/postgresql)"; exit 1; }; \
		echo "pg-start: starting PostgreSQL $(PG_START_VERSION)/$(PG_START_CLUSTER)"; \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $(PG_START_VERSION) $(PG_START_CLUSTER) start; }
	@for i in $$(seq 30); do pg_isready -h 127.0.0.1 -q && exit 0; sleep 1; done; \
		echo "pg-start: PostgreSQL does not answer on 127.0.0.1 after 30 s"; exit 1

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
