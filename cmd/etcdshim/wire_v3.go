package main

import (
	"net/http"

	"github.com/etcdshim/etcdshim/internal/httpguard"
	"github.com/etcdshim/etcdshim/rewrite/gateway"
)

// wireV3 builds the JSON gateway (/v3, /v3beta, /v3alpha); gRPC itself is
// the front's tunnel. It runs nothing of its own.
func wireV3(d deps) (http.Handler, error) {
	cfg := d.cfg
	gwh, err := gateway.New(gateway.Options{
		LegacyPrefixes:  cfg.GatewayLegacyPrefixes,
		LegacyMode:      cfg.GatewayLegacyMode,
		MaxRequestBytes: cfg.MaxRequestBytes,
		Passthrough:     d.pass,
		MarkAnonymous:   d.markAnonymous,
		Registerer:      d.shimReg,
		Legacy:          d.legacy,
		Logger:          d.log.Named("gateway"),
		// The websocket Origin check follows --cors, as the CORS headers do.
		OriginAllowed: httpguard.New(cfg.HostWhitelist, cfg.CORS).OriginAllowed,
	}, d.pool.ClientConn())
	if err != nil {
		return nil, err
	}
	return gwh, nil
}
