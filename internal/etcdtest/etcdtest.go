package etcdtest

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/etcdshim/etcdshim/internal/freeport"
	"github.com/etcdshim/etcdshim/internal/waitfor"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Start runs a single-member etcd named m0 on free loopback ports, stopped
// when the test ends, and returns it with a gRPC connection to it. It skips
// the test under -short.
func Start(t testing.TB) (*embed.Etcd, *grpc.ClientConn) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an embedded etcd")
	}
	cfg := embed.NewConfig()
	cfg.Name = "m0"
	cfg.Dir = t.TempDir()
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	// The cheapest password hash: every user added and every Authenticate
	// pays for one, and under -race on a loaded machine the default cost
	// took longer than a handler's request timeout.
	cfg.BcryptCost = uint(bcrypt.MinCost)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	waitfor.Recv(t, e.Server.ReadyNotify(), time.Minute, "the embedded etcd to be ready")
	cc, err := grpc.NewClient("passthrough:///"+cu.Host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return e, cc
}

func freePort(t testing.TB) int {
	p, err := freeport.Get()
	if err != nil {
		t.Fatal(err)
	}
	return p
}
