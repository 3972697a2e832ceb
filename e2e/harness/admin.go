package harness

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/etcdshim/etcdshim/proxy"
)

// AdminReport is the shim's answer on its admin listener
// (--listen-admin-url) to /drain and /prestop: the proxy's own type, so the
// tests read exactly what the shim writes.
type AdminReport = proxy.DrainReport

// PreStop drains the shim's own member as the Kubernetes preStop hook does
// (GET /prestop): leadership moves away when the member leads, and the
// answer comes once nothing of the shim's is in flight on the member.
func PreStop(admin string) (AdminReport, error) { return adminCall(http.MethodGet, admin+"/prestop") }

// Drain drains the shim's own member (POST /drain) until DELETE /drain.
func Drain(admin string) (AdminReport, error) { return adminCall(http.MethodPost, admin+"/drain") }

// Undrain ends a drain (DELETE /drain): the member takes requests again.
func Undrain(admin string) (AdminReport, error) {
	return adminCall(http.MethodDelete, admin+"/drain")
}

// AdminState is the drain state and the tunnels per member (GET /drain).
func AdminState(admin string) (AdminReport, error) { return adminCall(http.MethodGet, admin+"/drain") }

func adminCall(method, u string) (AdminReport, error) {
	var rep AdminReport
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		return rep, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rep, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return rep, fmt.Errorf("%s %s: HTTP %d: %w", method, u, resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("%s %s: HTTP %d: %s", method, u, resp.StatusCode, rep.Error)
	}
	return rep, nil
}
