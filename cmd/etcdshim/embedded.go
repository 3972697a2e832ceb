//go:build !noembed

package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/etcdshim/etcdshim/config"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type embedded struct {
	etcd      *embed.Etcd
	ClientURL string
	closing   *atomic.Bool
}

// Run serves until ctx ends or the member fails, and stops the member.
func (e *embedded) Run(ctx context.Context) error {
	var err error
	select {
	case <-ctx.Done():
	case err = <-e.etcd.Err():
	}
	e.closing.Store(true)
	e.etcd.Close()
	return err
}

// embedServeFailed is what etcd's embed package logs, at error level, when
// one of its listeners stops serving. Close stops them all, so each logs it
// once: "mux: server closed", "use of closed network connection".
const embedServeFailed = "setting up serving from embedded etcd failed."

// quietClose turns embedServeFailed into a debug line once Close has begun:
// a clean Ctrl-C logs no error. Before that it is a real failure and stays
// an error.
type quietClose struct {
	zapcore.Core
	closing *atomic.Bool
}

func (q quietClose) With(fields []zapcore.Field) zapcore.Core {
	return quietClose{Core: q.Core.With(fields), closing: q.closing}
}

func (q quietClose) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if ent.Message == embedServeFailed && q.closing.Load() {
		ent.Level = zapcore.DebugLevel
	}
	return q.Core.Check(ent, ce)
}

// startEmbedded runs an in-process etcd with client and peer ports on free
// loopback ports, so the shim can be tried without a cluster.
func startEmbedded(ctx context.Context, cfg config.Config, log *zap.Logger) (*embedded, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	ec := embed.NewConfig()
	ec.Name = "etcdshim-embedded"
	ec.Dir = cfg.EmbeddedDataDir
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", clientPort))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = ec.Name + "=" + pu.String()
	ec.LogLevel = "warn"
	ec.Logger = "zap"
	// The member logs errors only; its request stats would drown the shim's logs.
	closing := &atomic.Bool{}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(log.WithOptions(
		zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietClose{Core: c, closing: closing} }),
		zap.IncreaseLevel(zap.ErrorLevel)))
	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", cfg.EmbeddedDataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s did not become ready within 60s", cfg.EmbeddedDataDir)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	log.Info("embedded etcd ready", zap.String("client-url", cu.String()), zap.String("data-dir", cfg.EmbeddedDataDir))
	return &embedded{etcd: e, ClientURL: cu.String(), closing: closing}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
