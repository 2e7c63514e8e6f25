package cbfs

import (
	"fmt"
	"os"
	"syscall"
)

// DevMem reads physical memory through /dev/mem, opened read-only.
type DevMem struct {
	f *os.File
}

// OpenDevMem opens path (normally /dev/mem) read-only.
func OpenDevMem(path string) (*DevMem, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return &DevMem{f: f}, nil
}

// ReadAt reads physical memory at address off: pread first, else a
// read-only mapping. read(2) on /dev/mem only reaches addresses below the
// end of the kernel's direct RAM mapping (x86 valid_phys_addr_range), so
// on a machine with less than about 4 GiB of RAM the flash just below
// 4 GiB can only be mapped (as util/cbmem and flashtools do).
func (m *DevMem) ReadAt(p []byte, off int64) (int, error) {
	n, err := m.f.ReadAt(p, off)
	if err == nil {
		return n, nil
	}
	n, merr := m.mmapRead(p, off)
	if merr != nil {
		return 0, fmt.Errorf("%s at %#x: pread: %v; mmap: %w", m.f.Name(), off, err, merr)
	}
	return n, nil
}

func (m *DevMem) mmapRead(p []byte, off int64) (int, error) {
	ps := int64(os.Getpagesize())
	start := off &^ (ps - 1)
	length := (off + int64(len(p)) - start + ps - 1) &^ (ps - 1)
	data, err := syscall.Mmap(int(m.f.Fd()), start, int(length), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return 0, err
	}
	n := copy(p, data[off-start:])
	if err := syscall.Munmap(data); err != nil {
		return n, err
	}
	return n, nil
}

// Close closes the device.
func (m *DevMem) Close() error { return m.f.Close() }
