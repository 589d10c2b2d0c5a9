//go:build !openssl

package sign

var defaultBackend = Go
