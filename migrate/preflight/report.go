package preflight

// Status is a check's outcome.
type Status string

// Check outcomes, from best to worst.
const (
	StatusOK      Status = "ok"
	StatusWarn    Status = "warn"
	StatusBlocker Status = "blocker"
)

func (s Status) rank() int {
	switch s {
	case StatusWarn:
		return 1
	case StatusBlocker:
		return 2
	}
	return 0
}

// worse returns the worse of two statuses.
func worse(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Check is one finding.
type Check struct {
	// Name identifies the concern: health, members, version-path,
	// patch-level, leader, alarms, v2-data, v2-wal, legacy-clients.
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was found, in one or a few sentences.
	Detail string `json:"detail"`
	// Remedy says what to do about it (empty when nothing is needed).
	Remedy string `json:"remedy,omitempty"`
}

// Member is one member as the report shows it.
type Member struct {
	Name     string `json:"name,omitempty"`
	ID       string `json:"id,omitempty"`
	Endpoint string `json:"endpoint"`
	// Reachable is false when the member did not answer at all.
	Reachable bool   `json:"reachable"`
	Healthy   bool   `json:"healthy"`
	Server    string `json:"etcdserver,omitempty"`
	Cluster   string `json:"etcdcluster,omitempty"`
	Leader    bool   `json:"leader"`
	Error     string `json:"error,omitempty"`
}

// Step is one step of the upgrade plan.
type Step struct {
	// Action is snapshot, upgrade, move-leader or verify.
	Action   string `json:"action"`
	Member   string `json:"member,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	// From and To are the member's current and target versions (upgrade).
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// Text says what to do; Command is a command line that does or checks it.
	Text    string `json:"text"`
	Command string `json:"command,omitempty"`
}

// Report is the result of a preflight run.
type Report struct {
	Target  string   `json:"target"`
	Members []Member `json:"members"`
	// Leader is the leader's name (or endpoint when the name is unknown).
	Leader string  `json:"leader,omitempty"`
	Checks []Check `json:"checks"`
	Plan   []Step  `json:"plan"`
	// Verdict is the worst check status: ok, warn or blocker. Only blocker
	// makes the command fail.
	Verdict Status `json:"verdict"`
}

// Blockers counts the checks that block the upgrade.
func (r *Report) Blockers() int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == StatusBlocker {
			n++
		}
	}
	return n
}

// Check returns the named check, or nil.
func (r *Report) Check(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

func (r *Report) add(c Check) {
	r.Checks = append(r.Checks, c)
	r.Verdict = worse(r.Verdict, c.Status)
}
