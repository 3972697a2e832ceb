//go:build !noembed

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync/atomic"
	"syscall"
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
	closing := &atomic.Bool{}
	e, cu, err := startEtcdOnFreePorts(func(clientPort, peerPort int) *embed.Config {
		return embedConfig(cfg, log, closing, clientPort, peerPort)
	})
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
	log.Info("embedded etcd ready", zap.String("client-url", cu), zap.String("data-dir", cfg.EmbeddedDataDir))
	return &embedded{etcd: e, ClientURL: cu, closing: closing}, nil
}

// embedConfig is the member's configuration on the given loopback ports.
func embedConfig(cfg config.Config, log *zap.Logger, closing *atomic.Bool, clientPort, peerPort int) *embed.Config {
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
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(log.WithOptions(
		zap.WrapCore(func(c zapcore.Core) zapcore.Core { return quietClose{Core: c, closing: closing} }),
		zap.IncreaseLevel(zap.ErrorLevel)))
	return ec
}

// bindTries bounds the starts on ports another process took first.
const bindTries = 5

// pickPort finds a port nobody listens on now (a variable for tests).
var pickPort = freePort

// startEtcdOnFreePorts starts the member on picked ports, and again on new
// ones while one was taken meanwhile. The ports cannot be bound once and
// handed in: embed takes only URLs and binds them itself, and port 0 does
// not do either, since the member dials its own configured client address
// for its /v3 JSON gateway (":0" fails) and publishes the advertised URLs
// in its member list. A port picked by listening and closing can be taken
// before etcd binds it; etcd binds both before it writes anything to the
// data directory, so that failure is clean and a new pair is tried.
func startEtcdOnFreePorts(config func(clientPort, peerPort int) *embed.Config) (*embed.Etcd, string, error) {
	for try := 1; ; try++ {
		clientPort, err := pickPort()
		if err != nil {
			return nil, "", err
		}
		peerPort, err := pickPort()
		if err != nil {
			return nil, "", err
		}
		ec := config(clientPort, peerPort)
		e, err := embed.StartEtcd(ec)
		if err == nil {
			return e, ec.AdvertiseClientUrls[0].String(), nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || try == bindTries {
			return nil, "", err
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
