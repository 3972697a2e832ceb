package etcderr

import (
	"errors"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// WatchCanceled is the error a watch cancel names. etcd sends the reason of
// an auth refusal as the text of its rpctypes.ErrGRPC* error, which is all a
// cancel carries: it is turned back into that error, exactly, so Denied and
// InvalidToken recognise it; any other reason becomes an error of its own.
func WatchCanceled(reason string) error {
	for _, e := range []error{rpctypes.ErrGRPCPermissionDenied, rpctypes.ErrGRPCInvalidAuthToken,
		rpctypes.ErrGRPCAuthOldRevision, rpctypes.ErrGRPCUserEmpty} {
		if reason == e.Error() {
			return e
		}
	}
	return errors.New(reason)
}
