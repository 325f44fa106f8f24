# busbar — the two commands that matter: `make run` and `make test`.
GO       ?= go
BIN      := bin/busbar
DATA_DIR ?= .data
CONFIG   ?= examples/retail/busbar.yaml
LISTEN   ?= 127.0.0.1:8080
RECEIVER ?= 127.0.0.1:9090

.PHONY: all build run test test-short bench lint fmt clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/busbar

## run: busbar with the retail example on its embedded transport, plus a
## receiver on $(RECEIVER) that prints what each target gets. Ctrl-C stops both.
run: build
	@echo "busbar API on http://$(LISTEN)  —  publish with: $(BIN) put-events --bus retail examples/retail/events.json"
	@$(BIN) dev receiver --listen $(RECEIVER) & recv=$$!; \
	 trap 'kill $$recv 2>/dev/null; wait $$recv 2>/dev/null' EXIT INT TERM; \
	 $(BIN) serve --config $(CONFIG) --listen $(LISTEN) --data-dir $(DATA_DIR)

## test: the whole suite, race detector on, against real components.
test:
	./deployments/dev/test-deps.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...; s=$$?; ./deployments/dev/clickhouse.sh stop --if-started-for-tests; \
	 if [ -z "$$PULSAR_URL" ]; then echo "Pulsar integration: SKIPPED (set PULSAR_URL; see deployments/pulsar/README.md)"; \
	 else echo "Pulsar integration: ran (PULSAR_URL is set)"; fi; exit $$s

test-short:
	$(GO) test -race -short -count=1 ./...

## bench: Go benchmarks and load scenarios under bench/ (results: bench/RESULTS.md).
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./bench/...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-ed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin $(DATA_DIR)
