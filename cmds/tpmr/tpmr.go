package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/goheads/goheads/pkg/tpm"
)

var errUsage = errors.New("usage: tpmr pcrread [-a] <index> [file] | pcrsize | extend -ix <index> (-ic <string> | -if <file> | -ih <hex>)")

// openTPM is a variable so tests can point tpmr at an swtpm.
var openTPM = tpm.Open

func run(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, args []string) error {
	if len(args) == 0 {
		return errUsage
	}
	verb, args := args[0], args[1:]
	t, err := openTPM()
	if err != nil {
		return err
	}
	defer t.Close()
	switch verb {
	case "pcrsize":
		_, err := fmt.Fprintln(stdout, t.Family().PCRSize())
		return err
	case "pcrread":
		return pcrread(t, stdout, args)
	case "extend":
		return extend(t, args)
	}
	return fmt.Errorf("unknown verb %q; %w", verb, errUsage)
}

func parsePCR(s string) (int, error) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i > tpm.MaxPCR {
		return 0, fmt.Errorf("PCR index %q: want 0-%d", s, tpm.MaxPCR)
	}
	return i, nil
}

func pcrread(t *tpm.TPM, stdout io.Writer, args []string) error {
	appendMode := false
	if len(args) > 0 && args[0] == "-a" {
		appendMode, args = true, args[1:]
	}
	if len(args) < 1 || len(args) > 2 {
		return errUsage
	}
	idx, err := parsePCR(args[0])
	if err != nil {
		return err
	}
	v, err := t.ReadPCR(idx)
	if err != nil {
		return err
	}
	if len(args) == 1 {
		_, err := fmt.Fprintln(stdout, hex.EncodeToString(v))
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendMode {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(args[1], flags, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func extend(t *tpm.TPM, args []string) error {
	idx := -1
	var data, digest []byte
	var desc string
	for len(args) >= 2 {
		var err error
		switch args[0] {
		case "-ix":
			if idx, err = parsePCR(args[1]); err != nil {
				return err
			}
		case "-ic":
			data, desc = []byte(args[1]), fmt.Sprintf("string %q", args[1])
		case "-if":
			if data, err = os.ReadFile(args[1]); err != nil {
				return err
			}
			desc = "file " + args[1]
		case "-ih":
			if digest, err = hex.DecodeString(args[1]); err != nil {
				return fmt.Errorf("-ih %q: not hex", args[1])
			}
			desc = "digest " + args[1]
		default:
			return errUsage
		}
		args = args[2:]
	}
	if len(args) != 0 || idx < 0 || (data == nil) == (digest == nil) {
		return errUsage
	}
	if digest != nil {
		return t.ExtendDigest(idx, digest, desc)
	}
	return t.Measure(idx, data, desc)
}
