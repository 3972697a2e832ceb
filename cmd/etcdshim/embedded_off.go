//go:build noembed

package main

import (
	"context"
	"errors"

	"github.com/etcdshim/etcdshim/config"
	"go.uber.org/zap"
)

// embedded is absent from production builds (-tags noembed): the etcd server
// that --embedded runs would be a quarter of the sidecar's binary, used by
// no sidecar.
type embedded struct{ ClientURL string }

func (e *embedded) Run(context.Context) error { return nil }

// errNoEmbedded tells a user of a production build where --embedded lives.
var errNoEmbedded = errors.New("--embedded is not in this build (built with -tags noembed); try the shim with `go run ./cmd/etcdshim --embedded` in a checkout")

func startEmbedded(context.Context, config.Config, *zap.Logger) (*embedded, error) {
	return nil, errNoEmbedded
}
