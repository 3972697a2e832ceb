package v2store

import (
	"bytes"
	"context"

	"github.com/etcdshim/etcdshim/internal/etcderr"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// A listing (a GET of a directory without recursive=true) shows the
// directory's files and its subdirectories' own nodes, nothing deeper; 3.4
// walks only those. Reading the directory's whole subtree for it made a
// 300-byte answer cost every key and every lease below (a GET of / read
// the whole keyspace, and asked the member for the TTL of each leased key
// in it). listChildren reads the subtree in pages and jumps over the rest
// of each subdirectory once its marker is seen, so a listing costs about
// one small range per subdirectory plus its files, whatever lies deeper.
const (
	// listFirstPage is the first range of a listing: a directory with
	// fewer keys below it is read in one call, as before.
	listFirstPage = 512
	// listMinPage and listMaxPage bound the ranges after it: small after
	// a jump (the next key is likely the next subdirectory's marker, and
	// what follows it is skipped), doubling while files are read.
	listMinPage = 8
	listMaxPage = 512
	// listMemberPages bounds the ranges after the first that a listing
	// sends the member; the rest is then read in one range. The member
	// walks everything from a range's key to its end to count it, limit
	// or not: paging a directory of many subdirectories there would cost
	// its whole subtree per page. The read cache stops at the limit, so a
	// listing it answers pages to the end.
	listMemberPages = 4
)

// listChildren reads what a listing of the directory whose subtree is
// [start, end) needs, from from (the directory's own key, or start) on,
// all at the first page's revision: every key of the subtree except the
// rest of a subdirectory whose marker was read. A subdirectory without a
// marker (made by v3 clients) is read whole: its indexes are the lowest
// create revision below it; so is everything below a directory without a
// marker (root excepted, whose indexes are not shown). The answer is one
// RangeResponse with the first page's header.
//
// maxPages bounds the ranges after the first (listMemberPages for the
// member); past it the rest is read whole.
func listChildren(ctx context.Context, kv Ranger, from, start, end []byte, root, serializable bool, maxPages int) (*pb.RangeResponse, error) {
	// The pages after the first read at its revision, which a compaction
	// may remove meanwhile; the listing then starts again, at the new one.
	for attempt := 1; ; attempt++ {
		r, err := listPages(ctx, kv, from, start, end, root, serializable, maxPages)
		if attempt < listAttempts && etcderr.Is(err, rpctypes.ErrGRPCCompacted) {
			continue
		}
		return r, err
	}
}

// listAttempts bounds the listings started again after a compaction.
const listAttempts = 3

func listPages(ctx context.Context, kv Ranger, from, start, end []byte, root, serializable bool, maxPages int) (*pb.RangeResponse, error) {
	r, err := kv.Range(ctx, &pb.RangeRequest{Key: from, RangeEnd: end, Serializable: serializable, Limit: listFirstPage})
	if err != nil || !r.More {
		return r, err
	}
	out := &pb.RangeResponse{Header: r.Header}
	c := listCursor{start: start, jumps: root}
	page := int64(listMinPage)
	for pages := 0; ; pages++ {
		out.Kvs = append(out.Kvs, r.Kvs...)
		if !r.More || len(r.Kvs) == 0 {
			break
		}
		next, jumped := c.next(r.Kvs)
		switch {
		case pages == maxPages:
			page = 0 // the rest, in one range
		case jumped:
			page = listMinPage
		default:
			page = min(2*page, listMaxPage)
		}
		r, err = kv.Range(ctx, &pb.RangeRequest{Key: next, RangeEnd: end, Revision: out.Header.GetRevision(),
			Serializable: serializable, Limit: page})
		if err != nil {
			return nil, err
		}
	}
	out.Count = int64(len(out.Kvs))
	return out, nil
}

// listCursor follows a listing's pages in key order.
type listCursor struct {
	start []byte // the directory's subtree: its marker, then what is below
	// jumps: subdirectories may be skipped (the directory's own indexes
	// do not depend on them: root, or a marker of its own).
	jumps, seenBelow bool
	child            []byte // the subdirectory the last key read is in
	childMarked      bool   // its first key was its marker
}

// next is where the range after kvs (one page, in key order) starts, and
// whether it jumps over keys.
func (c *listCursor) next(kvs []*mvccpb.KeyValue) ([]byte, bool) {
	for _, kv := range kvs {
		if !bytes.HasPrefix(kv.Key, c.start) {
			continue // the directory's own key, or a sibling such as /a-b
		}
		rel := kv.Key[len(c.start):]
		if !c.seenBelow {
			// The marker is the smallest key of the subtree.
			c.seenBelow = true
			c.jumps = c.jumps || len(rel) == 0
		}
		if i := bytes.IndexByte(rel, '/'); i >= 0 && !bytes.Equal(rel[:i], c.child) {
			// A subdirectory's first key: its marker, when it has one.
			c.child, c.childMarked = append(c.child[:0], rel[:i]...), i == len(rel)-1
		}
	}
	last := kvs[len(kvs)-1].Key
	if bytes.Compare(last, c.start) < 0 {
		// Siblings between the directory's key and its subtree are no
		// part of the answer.
		return c.start, true
	}
	rel := last[len(c.start):]
	if i := bytes.IndexByte(rel, '/'); i >= 0 && c.jumps && c.childMarked {
		// Past the rest of the subdirectory: its marker gave its node.
		// Its keys end before child+"0" ('0' follows '/').
		next := make([]byte, 0, len(c.start)+i+1)
		return append(append(append(next, c.start...), rel[:i]...), '0'), true
	}
	return append(append(make([]byte, 0, len(last)+1), last...), 0), false
}

// shownInListing reports whether the key at rel below a listed directory
// is a node the listing shows (the directory's marker, a file in it, a
// subdirectory's marker), whose lease's TTL it needs.
func shownInListing(rel []byte) bool {
	i := bytes.IndexByte(rel, '/')
	return i < 0 || i == len(rel)-1
}
