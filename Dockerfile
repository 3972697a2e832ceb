# syntax=docker/dockerfile:1
# etcdshim: static binary on a minimal, non-root base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -tags noembed -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/etcdshim ./cmd/etcdshim

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/etcdshim /usr/local/bin/etcdshim
USER nonroot:nonroot
EXPOSE 2379 2381
ENTRYPOINT ["/usr/local/bin/etcdshim"]
