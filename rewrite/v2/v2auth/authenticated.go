package v2auth

import "context"

// AuthenticatedUser is the user a request's context was authenticated as:
// set only once the member issued a token for the user's password, so a
// name a client merely claims (a refused password, auth off) and the guest
// user of anonymous requests are never returned. The legacy-client tracker
// records users from it.
func AuthenticatedUser(ctx context.Context) string {
	id, ok := ctx.Value(identityKey{}).(Identity)
	if !ok || id.Anonymous {
		return ""
	}
	return id.User
}
