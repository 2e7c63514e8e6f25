package vmtest

import (
	"strings"
	"testing"
)

func TestScreenEmulator(t *testing.T) {
	s := newScreen(20, 4)
	// What tcell sends: clear, absolute moves instead of spaces, SI/SO, SGR.
	s.Write([]byte("boot log\r\n\x1b[H\x1b[J\x1b(B\x1b[1;1H\x1b[37;44m+--\x1b[2;1H|\x1b[2;3HTOTP:\x1b[2;9H8265\x1b[m\x0f92 ok"))
	s.Write([]byte("\x1b]10;?\x1b\\\x1b[3;5Hx\x1b[3;1H\x1b[K"))
	got := s.Text()
	want := "+--\n| TOTP: 826592 ok\n\n\n"
	if got != want {
		t.Errorf("screen:\n%q\nwant\n%q", got, want)
	}
	// Scrolling text (the kernel log) keeps the last lines.
	s = newScreen(10, 2)
	s.Write([]byte("a\r\nb\r\nc\r\n"))
	if got := s.Text(); !strings.HasPrefix(got, "c\n") {
		t.Errorf("after scrolling: %q", got)
	}
	// UTF-8 split across writes.
	s = newScreen(10, 1)
	s.Write([]byte("\xe2\x96"))
	s.Write([]byte("\x80"))
	if got := s.Text(); got != "▀\n" {
		t.Errorf("utf-8: %q", got)
	}
}
