//go:build !openssl || !cgo

package sign

var defaultBackend = Go
