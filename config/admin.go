package config

import (
	"errors"
	"net"
	"net/url"
)

// CheckAdminURL keeps the admin interface (--listen-admin-url) on loopback
// and plain HTTP: whoever reaches it can take the shim's member out of
// rotation, so it must not be reachable from where clients are.
func CheckAdminURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return errors.New("must be http://127.0.0.1:PORT (or [::1] or localhost)")
	}
	if h := u.Hostname(); h != "localhost" {
		ip := net.ParseIP(h)
		if ip == nil || !ip.IsLoopback() {
			return errors.New("must be a loopback address: whoever reaches it can drain the shim")
		}
	}
	return nil
}
