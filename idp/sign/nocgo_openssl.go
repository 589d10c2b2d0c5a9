//go:build openssl && !cgo

package sign

// The openssl build tag needs cgo: a build that asked for OpenSSL must not quietly sign with
// Go. Build with CGO_ENABLED=1 and a C compiler (gcc) and libssl-dev, or without the tag.
var defaultBackend = theOpensslBuildTagNeedsCgo_SetCGO_ENABLED1AndInstallGccAndLibsslDev
