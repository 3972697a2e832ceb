// Package reqbody reads a request body whole, within a limit, before anything
// decodes it: a body over the limit costs the shim at most the limit in
// memory and no decoding work, whatever Content-Length says.
package reqbody
