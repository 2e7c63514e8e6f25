//go:build !linux

package cbfs

import "os"

// DevMem reads physical memory through a /dev/mem-like device, read-only.
type DevMem struct {
	f *os.File
}

// OpenDevMem opens path read-only.
func OpenDevMem(path string) (*DevMem, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return &DevMem{f: f}, nil
}

// ReadAt reads physical memory at address off with pread.
func (m *DevMem) ReadAt(p []byte, off int64) (int, error) { return m.f.ReadAt(p, off) }

// Close closes the device.
func (m *DevMem) Close() error { return m.f.Close() }
