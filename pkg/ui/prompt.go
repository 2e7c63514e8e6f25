// Package ui is what the owner sees: the boot menu (gui-init), its screens,
// and the prompts commands use. It shows state computed elsewhere; no
// security decision is made here.
package ui

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"
)

// ReadSecret prompts on out and reads one line from in without echo when in
// is a terminal (plain line read otherwise, for scripts and tests). The
// returned slice should be wiped by the caller after use.
func ReadSecret(in *os.File, out io.Writer, prompt string) ([]byte, error) {
	fmt.Fprint(out, prompt)
	if term.IsTerminal(int(in.Fd())) {
		b, err := term.ReadPassword(int(in.Fd()))
		fmt.Fprintln(out)
		return b, err
	}
	return readLine(in, prompt)
}

// ReadLine prompts on out and reads one line from in (echoed).
func ReadLine(in *os.File, out io.Writer, prompt string) (string, error) {
	fmt.Fprint(out, prompt)
	b, err := readLine(in, prompt)
	return string(b), err
}

func readLine(in *os.File, prompt string) ([]byte, error) {
	// One byte at a time: a buffered reader would swallow the answers to
	// later prompts.
	line := make([]byte, 0, 256) // room for a passphrase without copies left behind
	b := make([]byte, 1)
	for {
		n, err := in.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", prompt, err)
		}
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// Wipe overwrites a secret.
func Wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
