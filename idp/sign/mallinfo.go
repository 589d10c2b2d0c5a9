//go:build cgo && linux

package sign

/*
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static size_t jwtidp_malloc_inuse(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
	return mallinfo2().uordblks;
#else
	return 0;
#endif
}
*/
import "C"

// cMallocInUse is the C heap in use (glibc mallinfo2's uordblks, summed over all arenas), 0
// where that is unknown (another libc). The memory tests count libcrypto's allocations with
// it; it lives here because cgo is not allowed in _test.go files.
func cMallocInUse() uint64 { return uint64(C.jwtidp_malloc_inuse()) }
