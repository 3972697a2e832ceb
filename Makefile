# etcdshim: build, test, lint, benchmark.
#   make test   installs what the tests need (Debian packages, etcd builds), runs unit + e2e tests,
#               then the unit tests again under the race detector
#   make unit   fast tests only (no etcd processes)
#   make lint   gofmt, go vet, staticcheck

SHELL := /bin/bash
GO ?= go
ETCD_VERSIONS ?= v3.5.35 v3.6.16 v3.7.3
DEBIAN_PACKAGES := etcd-server etcd-client prometheus wrk hey python3-etcd python3-idna patroni
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: all build test unit e2e deps etcd lint bench clean

all: build

# The same flags as the Dockerfile: no cgo, no local paths, no symbol tables.
build:
	CGO_ENABLED=0 $(GO) build -tags noembed -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/etcdshim ./cmd/etcdshim

# Debian packages the e2e tests use as real servers and clients.
deps:
	@missing=""; \
	for b in /usr/bin/etcd /usr/bin/etcdctl /usr/bin/prometheus /usr/bin/promtool /usr/bin/wrk /usr/bin/hey; do \
	  [ -x "$$b" ] || missing="$$missing $$b"; done; \
	/usr/bin/python3 -c 'import etcd, patroni, idna' 2>/dev/null || missing="$$missing python3-etcd/patroni/idna"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages (missing:$$missing)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null; \
	fi

# etcd 3.5/3.6/3.7 from the Go module proxy, cached in ~/.cache/etcdshim.
etcd:
	bash scripts/build-etcd.sh $(ETCD_VERSIONS)

test: deps etcd
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 10m $$($(GO) list ./... | grep -v /e2e)

unit:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags noembed ./cmd/...
	$(GO) run $(STATICCHECK) ./...

# Side-by-side benchmarks; rewrites the tables in BENCHMARKS.md.
bench: deps etcd
	bash scripts/build-benchmark.sh
	$(GO) test -tags bench -run TestBench -count=1 -timeout 60m -v ./e2e/

clean:
	rm -rf bin
