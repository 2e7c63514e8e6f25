package tpm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-tpm/tpm2/transport"
	"golang.org/x/sys/unix"
)

// Transport carries one TPM command and its response. It is go-tpm's
// transport.TPM, so TPM 2.0 commands from go-tpm's direct API run over it
// unchanged; the TPM 1.2 code in this package uses the same interface.
type Transport = transport.TPM

// maxResponse is the largest TPM response buffer (TPM 2.0 PC Client: 4096).
const maxResponse = 4096

// device is a kernel TPM character device (/dev/tpm0 or /dev/tpmrm0): one
// write carries a command, the next read returns the whole response.
type device struct {
	mu sync.Mutex
	f  *os.File
}

// OpenDevice opens a kernel TPM device.
//
// It must stay blocking: os.OpenFile would register the descriptor with
// Go's poller, which sets O_NONBLOCK, and the kernel then sends commands
// asynchronously and answers a read that comes before a slow command
// finishes with 0 bytes instead of waiting (drivers/char/tpm/tpm-dev-common.c).
func OpenDevice(path string) (io.Closer, Transport, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	d := &device{f: f}
	return d, d, nil
}

func (d *device) Send(cmd []byte) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.f.Write(cmd); err != nil {
		return nil, fmt.Errorf("write %s: %w", d.f.Name(), err)
	}
	buf := make([]byte, maxResponse)
	n, err := d.f.Read(buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.f.Name(), err)
	}
	return buf[:n], nil
}

func (d *device) Close() error { return d.f.Close() }

// stream is a TPM reached over a byte stream that frames nothing itself, as
// swtpm's data socket does: the response length comes from its header.
type stream struct {
	mu sync.Mutex
	c  net.Conn
}

// DialSocket connects to swtpm's data channel (`swtpm socket --server
// type=unixio,path=...` or `type=tcp`). network is "unix" or "tcp".
func DialSocket(network, addr string) (io.Closer, Transport, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	s := &stream{c: c}
	return s, s, nil
}

func (s *stream) Send(cmd []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A TPM command can take seconds (key generation); a minute means the
	// other side is gone.
	s.c.SetDeadline(time.Now().Add(time.Minute))
	if _, err := s.c.Write(cmd); err != nil {
		return nil, err
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(s.c, hdr); err != nil {
		return nil, fmt.Errorf("read response header: %w", err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < 10 || size > maxResponse {
		return nil, fmt.Errorf("response size %d out of range", size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(s.c, rsp[10:]); err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	return rsp, nil
}

func (s *stream) Close() error { return s.c.Close() }

// CountingTransport counts the commands sent through it, so benchmarks and tests can
// say how many TPM round trips a flow costs.
type CountingTransport struct {
	T     Transport
	count atomic.Int64
}

// Send forwards cmd and counts it. A TPM that answers "retry" (busy with
// NV writes, self-test, or yielding) gets the same command again after a
// growing pause, as tpm2-tss and the kernel's TPM core do.
func (c *CountingTransport) Send(cmd []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		c.count.Add(1)
		rsp, err := c.T.Send(cmd)
		if err != nil || len(rsp) < 10 || attempt >= 12 {
			return rsp, err
		}
		switch binary.BigEndian.Uint32(rsp[6:10]) {
		case 0x922, 0x908, 0x90A, 0x800: // TPM2 RETRY, YIELDED, TESTING; TPM 1.2 TPM_RETRY
			time.Sleep(time.Duration(1<<min(attempt, 9)) * time.Millisecond)
			continue
		}
		return rsp, nil
	}
}

// readWriter adapts a Transport to the io.ReadWriter go-tpm's TPM 1.2
// package expects: Write sends, Read returns the response.
type readWriter struct {
	t   Transport
	rsp []byte
}

func (rw *readWriter) Write(p []byte) (int, error) {
	rsp, err := rw.t.Send(p)
	if err != nil {
		return 0, err
	}
	rw.rsp = rsp
	return len(p), nil
}

func (rw *readWriter) Read(p []byte) (int, error) {
	if len(rw.rsp) == 0 {
		return 0, io.EOF
	}
	n := copy(p, rw.rsp)
	rw.rsp = rw.rsp[n:]
	return n, nil
}

// Count returns the number of commands sent so far.
func (c *CountingTransport) Count() int64 { return c.count.Load() }

// ErrTransport wraps failures to reach the TPM at all.
var ErrTransport = errors.New("tpm transport")
