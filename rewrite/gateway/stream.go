package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// firstRequests are the streaming routes whose first request 3.4's gateway
// (grpc-gateway v1) decoded before answering: a malformed one got a 500
// error body and ended the request (over a websocket: one error frame, then
// the socket closed). grpc-gateway v2 decodes every request in the
// background and, on a malformed one, only stops sending: the client waits
// for answers that never come. 3.6+ members' gateways do the same on /v3,
// so the shim keeps that there; the legacy prefixes keep 3.4's answer.
var firstRequests = map[string]func() proto.Message{
	"/v3/watch":           func() proto.Message { return protoadapt.MessageV2Of(&pb.WatchRequest{}) },
	"/v3/lease/keepalive": func() proto.Message { return protoadapt.MessageV2Of(&pb.LeaseKeepAliveRequest{}) },
}

// clientStreamError is the status that ends a stream's answer: a member's own
// error as it is, the shim's lost connection to a member without the
// member's address (as for unary answers; the log keeps it), a stream the
// shim canceled for a request over --max-request-bytes with
// ResourceExhausted.
func clientStreamError(ctx context.Context, err error) *status.Status {
	if st := streamTooBig(ctx); st != nil {
		return st
	}
	return status.Convert(clientError(err))
}

// serveLegacyRoute answers a request on a legacy prefix, its path already
// rewritten to /v3.
func (g *Gateway) serveLegacyRoute(w http.ResponseWriter, r *http.Request) {
	if newReq := firstRequests[r.URL.Path]; newReq != nil && r.Body != nil {
		if err := checkFirstRequest(r, newReq()); err != nil {
			legacyError(r.Context(), nil, nil, w, r, status.Error(codes.Unknown, err.Error()))
			return
		}
	}
	g.legacy.mux(r.URL.Path).ServeHTTP(w, r)
}

// checkFirstRequest decodes the first JSON value of r's body and puts it
// back in front of the rest. Syntax errors read as 3.4's (both come from
// encoding/json); a value of the wrong type is reported by protojson.
func checkFirstRequest(r *http.Request, msg proto.Message) error {
	dec := json.NewDecoder(r.Body)
	var raw json.RawMessage
	err := dec.Decode(&raw)
	if errors.Is(err, io.EOF) {
		return nil // an empty stream: nothing to send, as in 3.4
	}
	if err == nil {
		err = protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(raw, msg)
	}
	if err != nil {
		return err
	}
	r.Body = &replayBody{Reader: io.MultiReader(bytes.NewReader(raw), dec.Buffered(), r.Body), Closer: r.Body}
	return nil
}

type replayBody struct {
	io.Reader
	io.Closer
}
