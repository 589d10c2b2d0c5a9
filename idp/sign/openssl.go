//go:build cgo && linux

package sign

/*
#cgo LDFLAGS: -ldl

#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

// libcrypto is loaded at run time (dlopen), so that building needs neither its headers nor the
// library: a machine with only Go (or gcc without libssl-dev) builds the same binary, which
// signs with Go when libcrypto 3 is not there. OpenSSL's types are opaque here; the functions
// called are declared below as pointers with the prototypes of OpenSSL 3's headers, and the
// few constants are copied from them (evp.h, obj_mac.h, core_names.h, crypto.h), which OpenSSL
// keeps stable across 3.x (the ABI of libcrypto.so.3).
typedef struct jwtidp_opaque EVP_PKEY;
typedef struct jwtidp_opaque EVP_PKEY_CTX;
typedef struct jwtidp_opaque EVP_MD_CTX;
typedef struct jwtidp_opaque EVP_MD;
typedef struct jwtidp_opaque BIGNUM;
typedef struct jwtidp_opaque OSSL_LIB_CTX;
typedef struct jwtidp_opaque ENGINE;

#define JWTIDP_EVP_PKEY_RSA 6                // EVP_PKEY_RSA, NID_rsaEncryption
#define JWTIDP_EVP_MD_CTX_FLAG_FINALISE 0x0200
#define JWTIDP_OPENSSL_VERSION 0             // OpenSSL_version's OPENSSL_VERSION

typedef unsigned long (*fn_OpenSSL_version_num)(void);
typedef const char *(*fn_OpenSSL_version)(int);
typedef unsigned long (*fn_ERR_get_error)(void);
typedef void (*fn_ERR_clear_error)(void);
typedef void (*fn_ERR_error_string_n)(unsigned long, char *, size_t);
typedef EVP_MD *(*fn_EVP_MD_fetch)(OSSL_LIB_CTX *, const char *, const char *);
typedef EVP_PKEY *(*fn_d2i_AutoPrivateKey)(EVP_PKEY **, const unsigned char **, long);
typedef int (*fn_EVP_PKEY_get_base_id)(const EVP_PKEY *);
typedef int (*fn_EVP_PKEY_is_a)(const EVP_PKEY *, const char *);
typedef int (*fn_EVP_PKEY_get_bn_param)(const EVP_PKEY *, const char *, BIGNUM **);
typedef int (*fn_EVP_PKEY_get_size)(const EVP_PKEY *);
typedef void (*fn_EVP_PKEY_free)(EVP_PKEY *);
typedef BIGNUM *(*fn_BN_bin2bn)(const unsigned char *, int, BIGNUM *);
typedef int (*fn_BN_cmp)(const BIGNUM *, const BIGNUM *);
typedef void (*fn_BN_free)(BIGNUM *);
typedef EVP_MD_CTX *(*fn_EVP_MD_CTX_new)(void);
typedef void (*fn_EVP_MD_CTX_free)(EVP_MD_CTX *);
typedef int (*fn_EVP_MD_CTX_copy_ex)(EVP_MD_CTX *, const EVP_MD_CTX *);
typedef void (*fn_EVP_MD_CTX_set_flags)(EVP_MD_CTX *, int);
typedef int (*fn_EVP_DigestSignInit)(EVP_MD_CTX *, EVP_PKEY_CTX **, const EVP_MD *, ENGINE *, EVP_PKEY *);
typedef int (*fn_EVP_DigestSign)(EVP_MD_CTX *, unsigned char *, size_t *, const unsigned char *, size_t);

// A loaded libcrypto: its handle, the functions called and SHA-256 fetched once. Never freed
// (one per process; dlclose of libcrypto is unsafe while its thread-local state lives).
typedef struct {
	void *handle;
	unsigned long version;
	const char *version_text;
	fn_ERR_get_error ERR_get_error;
	fn_ERR_clear_error ERR_clear_error;
	fn_ERR_error_string_n ERR_error_string_n;
	fn_EVP_MD_fetch EVP_MD_fetch;
	fn_d2i_AutoPrivateKey d2i_AutoPrivateKey;
	fn_EVP_PKEY_get_base_id EVP_PKEY_get_base_id;
	fn_EVP_PKEY_is_a EVP_PKEY_is_a;
	fn_EVP_PKEY_get_bn_param EVP_PKEY_get_bn_param;
	fn_EVP_PKEY_get_size EVP_PKEY_get_size;
	fn_EVP_PKEY_free EVP_PKEY_free;
	fn_BN_bin2bn BN_bin2bn;
	fn_BN_cmp BN_cmp;
	fn_BN_free BN_free;
	fn_EVP_MD_CTX_new EVP_MD_CTX_new;
	fn_EVP_MD_CTX_free EVP_MD_CTX_free;
	fn_EVP_MD_CTX_copy_ex EVP_MD_CTX_copy_ex;
	fn_EVP_MD_CTX_set_flags EVP_MD_CTX_set_flags;
	fn_EVP_DigestSignInit EVP_DigestSignInit;
	fn_EVP_DigestSign EVP_DigestSign;
	EVP_MD *sha256;
} jwtidp_lib;

enum {
	JWTIDP_OK = 0,
	JWTIDP_ESSL = 1,       // see the error code
	JWTIDP_ENOTRSA = 2,
	JWTIDP_EMODULUS = 3,
	JWTIDP_EEXPONENT = 4,
	JWTIDP_EDLOPEN = 5,    // see the message
	JWTIDP_EDLSYM = 6,     // see the message
	JWTIDP_EVERSION = 7,   // see the version
	JWTIDP_ENOMEM = 8,
};

// OpenSSL's error queue is per thread, and a goroutine may run on another thread in its next
// cgo call, so every helper below reads the queue in the same C call that failed, returns the
// first code and empties the queue.
static unsigned long jwtidp_err(const jwtidp_lib *l) {
	unsigned long e = l->ERR_get_error();
	l->ERR_clear_error();
	return e;
}

static void jwtidp_errstr(const jwtidp_lib *l, unsigned long e, char *buf, size_t len) {
	l->ERR_error_string_n(e, buf, len);
}

// jwtidp_dlerror copies dlerror's message (a static buffer of the calling thread's) to msg.
static void jwtidp_dlerror(char *msg, size_t len) {
	const char *e = dlerror();
	if (e == NULL)
		e = "unknown dlopen error";
	strncpy(msg, e, len - 1);
	msg[len - 1] = 0;
}

#define JWTIDP_SYM(name) \
	if ((l->name = (fn_##name)dlsym(l->handle, #name)) == NULL) { \
		jwtidp_dlerror(msg, msglen); \
		*why = JWTIDP_EDLSYM; \
		goto fail; \
	}

// jwtidp_open loads the library named name (a file name dlopen looks up as the dynamic linker
// does, or a path) and its functions. On failure it returns NULL with why and a message (the
// dlopen or dlsym error), the version found (JWTIDP_EVERSION) or an OpenSSL error code.
static jwtidp_lib *jwtidp_open(const char *name, int *why, char *msg, size_t msglen, unsigned long *version, unsigned long *err) {
	jwtidp_lib *l;
	fn_OpenSSL_version_num version_num;
	fn_OpenSSL_version version_text;

	*why = JWTIDP_ENOMEM;
	*err = 0;
	*version = 0;
	msg[0] = 0;
	l = calloc(1, sizeof *l);
	if (l == NULL)
		return NULL;
	// RTLD_LOCAL: libcrypto's symbols stay out of the global namespace, so nothing else in the
	// process binds to them by accident.
	l->handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (l->handle == NULL) {
		jwtidp_dlerror(msg, msglen);
		*why = JWTIDP_EDLOPEN;
		free(l);
		return NULL;
	}
	version_num = (fn_OpenSSL_version_num)dlsym(l->handle, "OpenSSL_version_num");
	if (version_num == NULL) {
		jwtidp_dlerror(msg, msglen);
		*why = JWTIDP_EDLSYM;
		goto fail;
	}
	// 0xMNN00PP0: major, minor, patch (OpenSSL 3's OPENSSL_VERSION_NUMBER).
	l->version = *version = version_num();
	if ((l->version >> 28) != 3) {
		*why = JWTIDP_EVERSION;
		goto fail;
	}
	version_text = (fn_OpenSSL_version)dlsym(l->handle, "OpenSSL_version");
	l->version_text = version_text != NULL ? version_text(JWTIDP_OPENSSL_VERSION) : NULL;
	JWTIDP_SYM(ERR_get_error)
	JWTIDP_SYM(ERR_clear_error)
	JWTIDP_SYM(ERR_error_string_n)
	JWTIDP_SYM(EVP_MD_fetch)
	JWTIDP_SYM(d2i_AutoPrivateKey)
	JWTIDP_SYM(EVP_PKEY_get_base_id)
	JWTIDP_SYM(EVP_PKEY_is_a)
	JWTIDP_SYM(EVP_PKEY_get_bn_param)
	JWTIDP_SYM(EVP_PKEY_get_size)
	JWTIDP_SYM(EVP_PKEY_free)
	JWTIDP_SYM(BN_bin2bn)
	JWTIDP_SYM(BN_cmp)
	JWTIDP_SYM(BN_free)
	JWTIDP_SYM(EVP_MD_CTX_new)
	JWTIDP_SYM(EVP_MD_CTX_free)
	JWTIDP_SYM(EVP_MD_CTX_copy_ex)
	JWTIDP_SYM(EVP_MD_CTX_set_flags)
	JWTIDP_SYM(EVP_DigestSignInit)
	JWTIDP_SYM(EVP_DigestSign)
	l->ERR_clear_error();
	l->sha256 = l->EVP_MD_fetch(NULL, "SHA256", NULL);
	if (l->sha256 == NULL) {
		*err = jwtidp_err(l);
		*why = JWTIDP_ESSL;
		goto fail;
	}
	*why = JWTIDP_OK;
	return l;
fail:
	dlclose(l->handle);
	free(l);
	return NULL;
}

static const char *jwtidp_version_text(const jwtidp_lib *l) { return l->version_text; }

// A loaded key: the EVP_PKEY and an EVP_MD_CTX on which EVP_DigestSignInit(SHA-256, pkey)
// was done once. The template is never signed with; each Sign copies it (EVP_MD_CTX_copy_ex,
// which only reads it and takes references, so concurrent copies are safe) into a context of
// its own, freed after the signature. That skips the per-call fetches (under libcrypto's global
// method-store lock) and provider setup of EVP_DigestSignInit: new+copy_ex+free measured
// ~0.3 µs against ~3.8 µs for new+EVP_DigestSignInit+free, against an RSA-2048 private-key
// operation of ~290 µs, so about 1% of a signature (BenchmarkOpenSSLContextReuse: 299 µs
// against 305 µs, mean of 6). A pool of contexts would save only the EVP_MD_CTX_new malloc
// (copy_ex re-duplicates the provider contexts into a reused one anyway), and a sync.Pool may
// drop C memory at a GC with no hook to free it.
typedef struct {
	const jwtidp_lib *l;
	EVP_PKEY *pkey;
	EVP_MD_CTX *tmpl;
	size_t siglen;
} jwtidp_key;

static void jwtidp_free(jwtidp_key *k) {
	if (k == NULL)
		return;
	if (k->tmpl != NULL)
		k->l->EVP_MD_CTX_free(k->tmpl);
	if (k->pkey != NULL)
		k->l->EVP_PKEY_free(k->pkey);
	free(k);
}

// jwtidp_bn_eq: is the BIGNUM parameter name of pkey equal to the big-endian b[:blen]?
static int jwtidp_bn_eq(const jwtidp_lib *l, EVP_PKEY *pkey, const char *name, const unsigned char *b, size_t blen, int *eq, unsigned long *err) {
	BIGNUM *have = NULL, *want = NULL;
	int ok = 0;
	if (!l->EVP_PKEY_get_bn_param(pkey, name, &have))
		goto out;
	want = l->BN_bin2bn(b, (int)blen, NULL);
	if (want == NULL)
		goto out;
	*eq = l->BN_cmp(have, want) == 0;
	ok = 1;
out:
	if (!ok)
		*err = jwtidp_err(l);
	l->BN_free(have);
	l->BN_free(want);
	return ok;
}

static jwtidp_key *jwtidp_load(const jwtidp_lib *l, const unsigned char *der, long derlen,
		const unsigned char *n, size_t nlen, const unsigned char *e, size_t elen,
		int *why, unsigned long *err) {
	jwtidp_key *k;
	const unsigned char *p = der;
	int eq = 0;

	l->ERR_clear_error();
	*why = JWTIDP_ESSL;
	*err = 0;
	k = calloc(1, sizeof *k);
	if (k == NULL)
		return NULL;
	k->l = l;
	k->pkey = l->d2i_AutoPrivateKey(NULL, &p, derlen);
	if (k->pkey == NULL)
		goto sslfail;
	// EVP_PKEY_RSA only: an RSA-PSS key would refuse PKCS #1 v1.5 padding.
	if (l->EVP_PKEY_get_base_id(k->pkey) != JWTIDP_EVP_PKEY_RSA || !l->EVP_PKEY_is_a(k->pkey, "RSA")) {
		*why = JWTIDP_ENOTRSA;
		goto fail;
	}
	// "n" and "e": OSSL_PKEY_PARAM_RSA_N and OSSL_PKEY_PARAM_RSA_E.
	if (!jwtidp_bn_eq(l, k->pkey, "n", n, nlen, &eq, err))
		goto fail;
	if (!eq) {
		*why = JWTIDP_EMODULUS;
		goto fail;
	}
	if (!jwtidp_bn_eq(l, k->pkey, "e", e, elen, &eq, err))
		goto fail;
	if (!eq) {
		*why = JWTIDP_EEXPONENT;
		goto fail;
	}
	if (l->EVP_PKEY_get_size(k->pkey) <= 0)
		goto sslfail;
	k->siglen = (size_t)l->EVP_PKEY_get_size(k->pkey);
	k->tmpl = l->EVP_MD_CTX_new();
	if (k->tmpl == NULL)
		goto sslfail;
	// PKCS #1 v1.5 is the RSA default padding.
	if (l->EVP_DigestSignInit(k->tmpl, NULL, l->sha256, NULL, k->pkey) != 1)
		goto sslfail;
	*why = JWTIDP_OK;
	return k;
sslfail:
	*err = jwtidp_err(l);
fail:
	l->ERR_clear_error();
	jwtidp_free(k);
	return NULL;
}

static const unsigned char jwtidp_empty[1];

// jwtidp_sign_with writes the signature of msg[:len] to sig (k->siglen bytes). By default from a
// copy of the key's template: EVP_MD_CTX_FLAG_FINALISE lets EVP_DigestSignFinal finalise the copy
// in place instead of duplicating its EVP_PKEY_CTX once more (the copy is freed right after).
// With fresh, the plain way, a fresh EVP_DigestSignInit per signature — kept for
// BenchmarkOpenSSLContext, which measures what the template saves.
static int jwtidp_sign_with(jwtidp_key *k, const unsigned char *msg, size_t len,
		unsigned char *sig, size_t *siglen, unsigned long *err, int fresh) {
	const jwtidp_lib *l = k->l;
	EVP_MD_CTX *ctx;
	int ok = 0;

	l->ERR_clear_error();
	*err = 0;
	if (msg == NULL)
		msg = jwtidp_empty;
	*siglen = k->siglen;
	ctx = l->EVP_MD_CTX_new();
	if (ctx == NULL)
		goto out;
	if (fresh) {
		if (l->EVP_DigestSignInit(ctx, NULL, l->sha256, NULL, k->pkey) != 1)
			goto out;
	} else {
		if (l->EVP_MD_CTX_copy_ex(ctx, k->tmpl) != 1)
			goto out;
		l->EVP_MD_CTX_set_flags(ctx, JWTIDP_EVP_MD_CTX_FLAG_FINALISE);
	}
	ok = l->EVP_DigestSign(ctx, sig, siglen, msg, len) == 1;
out:
	if (!ok)
		*err = jwtidp_err(l);
	if (ctx != NULL)
		l->EVP_MD_CTX_free(ctx);
	return ok;
}

static int jwtidp_sign(jwtidp_key *k, const unsigned char *msg, size_t len,
		unsigned char *sig, size_t *siglen, unsigned long *err) {
	return jwtidp_sign_with(k, msg, len, sig, siglen, err, 0);
}

static int jwtidp_sign_init(jwtidp_key *k, const unsigned char *msg, size_t len,
		unsigned char *sig, size_t *siglen, unsigned long *err) {
	return jwtidp_sign_with(k, msg, len, sig, siglen, err, 1);
}
*/
import "C"

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// libcryptoNames are the files OpenSSL tries, in order: OpenSSL 3's soname, then the
// development link (libssl-dev's), which may point at another version — the version check
// refuses that.
var libcryptoNames = []string{"libcrypto.so.3", "libcrypto.so"}

var openSSLOnce = sync.OnceValues(func() (Backend, error) { return LoadOpenSSL(libcryptoNames...) })

// OpenSSL is the backend of the system's libcrypto 3, loaded the first time it is asked for,
// or why it cannot be loaded (the first library's error).
func OpenSSL() (Backend, error) { return openSSLOnce() }

// LoadOpenSSL loads the first of the libraries names (file names the dynamic linker looks up,
// or paths) that opens and is OpenSSL 3.x. A test gives a name that cannot load; the IdP uses
// OpenSSL, which loads libcrypto once.
func LoadOpenSSL(names ...string) (Backend, error) {
	var first error
	for _, name := range names {
		b, err := loadLibcrypto(name)
		if err == nil {
			return b, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		first = errors.New("sign: openssl: no library to load")
	}
	return nil, first
}

func loadLibcrypto(name string) (Backend, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var why C.int
	var msg [512]C.char
	var version, code C.ulong
	l := C.jwtidp_open(cname, &why, &msg[0], C.size_t(len(msg)), &version, &code)
	switch why {
	case C.JWTIDP_OK:
	case C.JWTIDP_EDLOPEN, C.JWTIDP_EDLSYM:
		// dlopen's message names the file: "libcrypto.so.3: cannot open shared object file: …".
		return nil, errors.New(C.GoString(&msg[0]))
	case C.JWTIDP_EVERSION:
		return nil, fmt.Errorf("%s is OpenSSL version %#x, not 3.x", name, uint64(version))
	case C.JWTIDP_ESSL:
		return nil, fmt.Errorf("%s: %w", name, sslErrorOf(nil, "EVP_MD_fetch(SHA256)", code))
	default:
		return nil, fmt.Errorf("%s: out of memory", name)
	}
	if l == nil {
		return nil, fmt.Errorf("%s: loading failed", name)
	}
	text := ""
	if t := C.jwtidp_version_text(l); t != nil {
		text = C.GoString(t)
	}
	return opensslBackend{l: l, file: name, version: text}, nil
}

type opensslBackend struct {
	l       *C.jwtidp_lib
	file    string // the name it was loaded by
	version string // OpenSSL_version(OPENSSL_VERSION): "OpenSSL 3.0.19 27 Jan 2026"
}

func (opensslBackend) Name() string { return "openssl" }

// String is where the backend comes from: "libcrypto.so.3 (OpenSSL 3.0.19 27 Jan 2026)".
func (b opensslBackend) String() string {
	if b.version == "" {
		return b.file
	}
	return b.file + " (" + b.version + ")"
}

// sslErrorOf is op's failure with the text of OpenSSL's error code e (0: the queue was empty);
// l may be nil when the library has no error-string function yet.
func sslErrorOf(l *C.jwtidp_lib, op string, e C.ulong) error {
	if e == 0 {
		return fmt.Errorf("sign: openssl: %s failed", op)
	}
	if l == nil {
		return fmt.Errorf("sign: openssl: %s: error %#x", op, uint64(e))
	}
	var buf [256]C.char
	C.jwtidp_errstr(l, e, &buf[0], C.size_t(len(buf)))
	return fmt.Errorf("sign: openssl: %s: %s", op, C.GoString(&buf[0]))
}

func (b opensslBackend) Load(priv *rsa.PrivateKey, der []byte) (Key, error) {
	if priv == nil || priv.N == nil {
		return nil, errors.New("sign: openssl: no private key")
	}
	if len(der) == 0 {
		return nil, errors.New("sign: openssl: empty PKCS #8 DER")
	}
	n := priv.N.Bytes()
	e := []byte{byte(priv.E >> 24), byte(priv.E >> 16), byte(priv.E >> 8), byte(priv.E)}
	var why C.int
	var code C.ulong
	// Go memory passed for the call only: C copies what it keeps (the key, the BIGNUMs).
	ck := C.jwtidp_load(b.l, (*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)),
		(*C.uchar)(unsafe.Pointer(&n[0])), C.size_t(len(n)),
		(*C.uchar)(unsafe.Pointer(&e[0])), C.size_t(len(e)), &why, &code)
	switch why {
	case C.JWTIDP_OK:
	case C.JWTIDP_ENOTRSA:
		return nil, errors.New("sign: openssl: the PKCS #8 key is not an RSA key")
	case C.JWTIDP_EMODULUS:
		return nil, errors.New("sign: openssl: the PKCS #8 key's modulus is not the private key's")
	case C.JWTIDP_EEXPONENT:
		return nil, errors.New("sign: openssl: the PKCS #8 key's public exponent is not the private key's")
	default:
		return nil, sslErrorOf(b.l, "loading the PKCS #8 key", code)
	}
	if ck == nil {
		return nil, errors.New("sign: openssl: loading the PKCS #8 key failed")
	}
	h := &sslHandle{k: ck}
	k := &opensslKey{h: h}
	// A key dropped without Close is closed when it becomes unreachable. The cleanup holds
	// only the handle; a Sign in flight keeps k reachable (and Close waits for it anyway).
	h.cleanup = runtime.AddCleanup(k, func(h *sslHandle) { h.close() }, h)
	return k, nil
}

// sslHandle owns the C key. Signs hold mu's read lock for their C call; close takes the write
// lock, so it waits for the signs in flight, frees the key, and every later sign sees k == nil.
type sslHandle struct {
	mu      sync.RWMutex
	k       *C.jwtidp_key // nil once closed
	cleanup runtime.Cleanup
}

func (h *sslHandle) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.k != nil {
		C.jwtidp_free(h.k)
		h.k = nil
	}
}

// testHookInFlight, set by a test only, runs where Sign holds the key for its C call.
var testHookInFlight func()

type opensslKey struct {
	h *sslHandle
}

func (k *opensslKey) Sign(msg []byte) ([]byte, error) { return k.sign(msg, false) }

func (k *opensslKey) sign(msg []byte, initEach bool) ([]byte, error) {
	h := k.h
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.k == nil {
		return nil, ErrClosed
	}
	sig := make([]byte, int(h.k.siglen))
	var p *C.uchar
	if len(msg) > 0 {
		p = (*C.uchar)(unsafe.Pointer(&msg[0]))
	}
	var n C.size_t
	var code C.ulong
	var ok C.int
	if testHookInFlight != nil {
		testHookInFlight()
	}
	if initEach {
		ok = C.jwtidp_sign_init(h.k, p, C.size_t(len(msg)), (*C.uchar)(unsafe.Pointer(&sig[0])), &n, &code)
	} else {
		ok = C.jwtidp_sign(h.k, p, C.size_t(len(msg)), (*C.uchar)(unsafe.Pointer(&sig[0])), &n, &code)
	}
	runtime.KeepAlive(k)
	if ok != 1 {
		return nil, sslErrorOf(h.k.l, "EVP_DigestSign", code)
	}
	if int(n) != len(sig) {
		// RSA signatures are always the modulus' length; anything else is a broken library.
		return nil, fmt.Errorf("sign: openssl: EVP_DigestSign wrote %d bytes, want %d", n, len(sig))
	}
	return sig, nil
}

func (k *opensslKey) Close() {
	k.h.cleanup.Stop()
	k.h.close()
}
