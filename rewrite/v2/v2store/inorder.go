package v2store

import (
	"context"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// maxInOrderAttempts bounds retries when concurrent writers race for names.
const maxInOrderAttempts = 10

// inOrderLast is the greatest 20-digit name; the ordering check covers
// names from the chosen one up to it.
const inOrderLast = "99999999999999999999"

// CreateInOrder creates <dir>/<20-digit N> (POST). N is the revision the
// create is expected to get (the current revision + 1): equal to the new
// key's createdIndex whenever no other write lands in between, as in 3.4.
// v3 cannot compare the global revision, so when writers race the name may
// fall below the createdIndex; the transaction still guarantees that names
// increase strictly in creation order (no in-order key at or above the
// chosen name may exist), so sorted listings stay FIFO.
func (s *V3Store) CreateInOrder(ctx context.Context, dir string, o SetOptions) (*Event, Meta, error) {
	lease, t, err := s.grant(ctx, o.TTL)
	if err != nil {
		return nil, Meta{}, err
	}
	for attempt := 0; attempt < maxInOrderAttempts; attempt++ {
		r, err := s.kv.Range(ctx, &pb.RangeRequest{Key: s.l.marker(dir), CountOnly: true})
		if err != nil {
			s.revokeLater(lease)
			return nil, Meta{}, fmt.Errorf("reading the store index: %w", err)
		}
		name := fmt.Sprintf("%020d", r.Header.Revision+1)
		p := dir + "/" + name
		if dir == "/" {
			p = "/" + name
		}
		base := dir
		if base == "/" {
			base = ""
		}
		cmp := append(s.l.noFileAbove(p), s.l.notFile(p), s.l.notDir(p),
			versionIs(s.l.key(p), append(s.l.key(base+"/"+inOrderLast), 0), 0))
		// Always the full transaction, in one round trip: the name is the
		// next revision, and a second try would widen the window in which
		// another write takes it.
		resp, err := s.txn(ctx, "create in order "+dir, cmp, append(s.l.markerOps(p), s.createOps(p, o, lease)...), s.l.probeOps(p))
		if err != nil {
			s.revokeLater(lease)
			return nil, Meta{}, err
		}
		m := meta(resp.Header)
		if resp.Succeeded {
			return &Event{Action: ActionCreate, Node: s.newNode(p, o, resp.Header.Revision, resp.Header.Revision, t)}, m, nil
		}
		if pr := s.readProbe(p, resp.Responses, resp.Header.Revision); pr.fileAncestor != "" {
			s.revokeLater(lease)
			return nil, m, pr.missing(p)
		}
		// Another writer took this name or a later one: take a fresh one.
	}
	s.revokeLater(lease)
	return nil, Meta{}, errors.New("create in order: too much contention for a name, try again")
}
