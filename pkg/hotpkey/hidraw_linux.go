package hotpkey

import (
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl direction bits, in place, for this architecture. The _IOC encoding
// differs between x86/arm (read=2, write=1, shift 30) and powerpc/mips
// (read=2, write=4, shift 29), and Heads runs on ppc64le too, so they are
// derived from two ioctls x/sys/unix defines for every Linux architecture:
// HIDIOCGRAWINFO = _IOR('H', 0x03, 8 bytes), TUNSETIFF = _IOW('T', 202, int).
const (
	iocRead  = unix.HIDIOCGRAWINFO &^ (8<<16 | 'H'<<8 | 0x03)
	iocWrite = unix.TUNSETIFF &^ (4<<16 | 'T'<<8 | 202)
)

// hidiocFeature is HIDIOCSFEATURE(n) (nr 0x06) or HIDIOCGFEATURE(n) (nr
// 0x07) from linux/hidraw.h: _IOC(_IOC_WRITE|_IOC_READ, 'H', nr, n).
func hidiocFeature(nr uintptr, n int) uintptr {
	return uintptr(iocRead|iocWrite) | uintptr(n)<<16 | 'H'<<8 | nr
}

// hidraw is a /dev/hidrawN node.
type hidraw struct {
	mu   sync.Mutex
	fd   int
	path string
}

// OpenHidraw opens a hidraw device node.
func OpenHidraw(path string) (HID, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &hidraw{fd: fd, path: path}, nil
}

func (h *hidraw) ioctl(req uintptr, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, fmt.Errorf("%s: empty HID report", h.path)
	}
	for {
		n, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(h.fd), req, uintptr(unsafe.Pointer(&buf[0])))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(n), nil
	}
}

func (h *hidraw) SetFeature(report []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.ioctl(hidiocFeature(0x06, len(report)), report); err != nil {
		return fmt.Errorf("%s: HIDIOCSFEATURE: %w", h.path, err)
	}
	return nil
}

func (h *hidraw) GetFeature(report []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.ioctl(hidiocFeature(0x07, len(report)), report)
	if err != nil {
		return 0, fmt.Errorf("%s: HIDIOCGFEATURE: %w", h.path, err)
	}
	return n, nil
}

func (h *hidraw) Write(report []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for {
		n, err := unix.Write(h.fd, report)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			// The output queue is full; wait until it drains.
			if _, err := unix.Poll([]unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLOUT}}, 1000); err != nil && err != unix.EINTR {
				return fmt.Errorf("write %s: %w", h.path, err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", h.path, err)
		}
		if n != len(report) {
			return fmt.Errorf("write %s: %d of %d bytes", h.path, n, len(report))
		}
		return nil
	}
}

func (h *hidraw) Read(p []byte, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return 0, fmt.Errorf("read %s: %w", h.path, ErrTimeout)
		}
		fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("poll %s: %w", h.path, err)
		}
		if n == 0 {
			return 0, fmt.Errorf("read %s: %w", h.path, ErrTimeout)
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 && fds[0].Revents&unix.POLLIN == 0 {
			// Unplugged: hidraw reports POLLHUP|POLLERR.
			return 0, fmt.Errorf("read %s: device gone: %w", h.path, ErrConnectionLost)
		}
		h.mu.Lock()
		r, err := unix.Read(h.fd, p)
		h.mu.Unlock()
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read %s: %w", h.path, err)
		}
		return r, nil
	}
}

func (h *hidraw) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}
