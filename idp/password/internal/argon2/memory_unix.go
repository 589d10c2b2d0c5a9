//go:build unix

package argon2

import (
	"syscall"
	"unsafe"
)

// mapBlocks maps n blocks of anonymous memory outside the Go heap: they hold no pointers, the
// collector need not scan or count them, and unmap hands them back to the OS at once. Where
// mmap fails it falls back to the heap.
func mapBlocks(n int) ([]block, func()) {
	b, err := syscall.Mmap(-1, 0, n*blockLength*8, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]block, n), nil
	}
	return unsafe.Slice((*block)(unsafe.Pointer(unsafe.SliceData(b))), n), func() { syscall.Munmap(b) }
}
