# The two commands a new machine needs (see README.md):
#   make run   - build pgvalve and run it in front of a throwaway local PostgreSQL
#   make test  - install what the tests need, then vet and run every test with -race
GO      ?= go
BIN     ?= bin/pgvalve
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build run test deps vet fuzz screenshot clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/pgvalve

deps:
	./scripts/ensure-deps.sh

run: deps build
	./$(BIN) demo $(DEMO_FLAGS)

# The cross-builds keep Linux-only system calls behind build tags
# (internal/wire/peek_linux.go); they need only the module cache.
vet:
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	GOOS=freebsd $(GO) build ./...

# ensure-node.sh installs test/node's npm packages for internal/app/node_test.go;
# ensure-chromium.sh a headless Chromium for the live page's browser test;
# ensure-exporter.sh Debian's PgBouncer exporter for the console's test.
test: deps vet
	./scripts/ensure-node.sh
	./scripts/ensure-chromium.sh
	./scripts/ensure-exporter.sh
	$(GO) test -race -count=1 ./...

# A short fuzzing pass over every protocol reader and the differential
# test's generator; FUZZTIME=5m for longer. The front door's seeds are
# real clients' logins: PGVALVE_RECORD_CORPUS=1 go test -run
# TestRecordLoginCorpus ./internal/app records them again.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzReader -fuzztime $(FUZZTIME) ./internal/wire
	$(GO) test -run '^$$' -fuzz FuzzParseStartup -fuzztime $(FUZZTIME) ./internal/wire
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz FuzzKeyLines -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz FuzzParseINI -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz FuzzUserlist -fuzztime $(FUZZTIME) ./internal/auth
	$(GO) test -run '^$$' -fuzz FuzzExchanges -fuzztime $(FUZZTIME) ./internal/auth
	$(GO) test -run '^$$' -fuzz FuzzFrontDoor -fuzztime $(FUZZTIME) ./internal/frontend
	$(GO) test -run '^$$' -fuzz FuzzCommand -fuzztime $(FUZZTIME) ./internal/console
	$(GO) test -run '^$$' -fuzz FuzzQuantilesAreOrdered -fuzztime $(FUZZTIME) ./internal/observe
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./internal/hba
	$(GO) test -run '^$$' -fuzz FuzzStatements -fuzztime $(FUZZTIME) ./internal/sqlscan
	$(GO) test -run '^$$' -fuzz FuzzEffects -fuzztime $(FUZZTIME) ./internal/sqlscan
	$(GO) test -run '^$$' -fuzz FuzzThePrefilterNeverHidesAnEffect -fuzztime $(FUZZTIME) ./internal/session
	$(GO) test -run '^$$' -fuzz FuzzTrackerMatchesADedicatedServer -fuzztime $(FUZZTIME) ./internal/stmt
	$(GO) test -run '^$$' -fuzz FuzzConversation -fuzztime $(FUZZTIME) ./internal/difftest
	$(GO) test -run '^$$' -fuzz FuzzRecv -fuzztime $(FUZZTIME) ./internal/takeover

# The live page over a made-up saturated pool, as docs/img/live-page.png
# (needs a Chromium; scripts/ensure-chromium.sh).
screenshot:
	./scripts/ensure-chromium.sh
	PGVALVE_SCREENSHOT_DIR=$(CURDIR)/docs/img $(GO) test -count=1 -run TestPageShowsALivePoolItsHoldersAndTheDiagnosis ./internal/web

clean:
	rm -rf bin
