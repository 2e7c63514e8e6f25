package sysinit

import (
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's master and the path of its slave.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	return m, fmt.Sprintf("/dev/pts/%d", n)
}

func TestKeyWindow(t *testing.T) {
	const min = 100 * time.Millisecond
	tests := []struct {
		name     string
		keyAfter time.Duration // <0: no key
		busyFor  time.Duration // 0: busy is nil
		want     byte
		atLeast  time.Duration
	}{
		{"no key, min only", -1, 0, 0, min},
		{"key inside min", 30 * time.Millisecond, 0, 'r', 0},
		{"no key, busy longer than min", -1, 250 * time.Millisecond, 0, 250 * time.Millisecond},
		// A key after the 0.1 s but while init still works is still taken.
		{"key while busy", 180 * time.Millisecond, 300 * time.Millisecond, 'o', 0},
		{"busy shorter than min", -1, 20 * time.Millisecond, 0, min},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, tty := openPTY(t)
			var busy chan struct{}
			if tt.busyFor > 0 {
				busy = make(chan struct{})
				time.AfterFunc(tt.busyFor, func() { close(busy) })
			}
			if tt.keyAfter >= 0 {
				time.AfterFunc(tt.keyAfter, func() { m.Write([]byte{tt.want}) })
			}
			start := time.Now()
			got, err := KeyWindow(tty, min, busy)
			took := time.Since(start)
			if err != nil || got != tt.want {
				t.Fatalf("KeyWindow = %q, %v; want %q", got, err, tt.want)
			}
			if took < tt.atLeast {
				t.Errorf("window closed after %s, want at least %s", took, tt.atLeast)
			}
			if tt.keyAfter >= 0 && took > tt.keyAfter+time.Second {
				t.Errorf("key taken after %s", took)
			}
			// The terminal is back in line mode with echo.
			tio, err := unix.IoctlGetTermios(int(m.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if tio.Lflag&(unix.ICANON|unix.ECHO) != unix.ICANON|unix.ECHO {
				t.Errorf("terminal left with lflag %#x", tio.Lflag)
			}
		})
	}
}
