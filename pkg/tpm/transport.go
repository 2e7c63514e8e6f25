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
func OpenDevice(path string) (io.Closer, Transport, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
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

// Counter counts the commands sent through it, so benchmarks and tests can
// say how many TPM round trips a flow costs.
type Counter struct {
	T     Transport
	count atomic.Int64
}

// Send forwards cmd and counts it.
func (c *Counter) Send(cmd []byte) ([]byte, error) {
	c.count.Add(1)
	return c.T.Send(cmd)
}

// Count returns the number of commands sent so far.
func (c *Counter) Count() int64 { return c.count.Load() }

// ErrTransport wraps failures to reach the TPM at all.
var ErrTransport = errors.New("tpm transport")
