package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/goheads/goheads/pkg/tpm"
)

const usage = `usage: tpmr <verb> ...
  pcrread [-a] <index> [file]        PCR value: binary to file (-a appends), hex to stdout without one
  pcrsize                            20 (TPM 1.2) or 32 (TPM 2.0)
  extend -ix <index> (-ic <string> | -if <file> | -ih <hex digest>)
  seal <file> <index> <pcrs> <pcrfile> <size> [passphrase] [owner passphrase]
  unseal <index> <pcrs> <size> <outfile> [passphrase]
  destroy <index> <size> [owner passphrase]
  counter_create [-pwdc ''] [-la label] -pwdo <owner passphrase>
  counter_read -ix <id>
  counter_increment -ix <id> [-pwdc '']
  reset <owner passphrase>
  kexec_finalize | shutdown | startsession
<index> is hex without 0x (4d47: TOTP/HOTP secret, 3: disk unlock key); <pcrs> is a
comma-separated list; <pcrfile> holds the PCR values in that order.`

var errUsage = errors.New(usage)

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
	case "seal":
		return seal(t, args)
	case "unseal":
		return unseal(t, args)
	case "destroy":
		if len(args) < 2 {
			return errUsage
		}
		idx, err := parseIndex(args[0])
		if err != nil {
			return err
		}
		return t.Destroy(idx, optArg(args, 2))
	case "counter_create":
		return counterCreate(t, stdout, args)
	case "counter_read", "counter_increment":
		return counter(t, stdout, verb, args)
	case "reset":
		if len(args) != 1 || args[0] == "" {
			return fmt.Errorf("reset needs the new TPM owner passphrase; %w", errUsage)
		}
		return t.Reset([]byte(args[0]))
	case "kexec_finalize":
		return t.Finalize()
	case "shutdown":
		return t.Shutdown()
	case "startsession":
		// Heads keeps TPM 2.0 session context files between calls; goheads
		// opens what it needs per command, so there is nothing to start.
		return nil
	}
	return fmt.Errorf("unknown verb %q\n%w", verb, errUsage)
}

func optArg(args []string, i int) []byte {
	if i < len(args) && args[i] != "" {
		return []byte(args[i])
	}
	return nil
}

func parsePCR(s string) (int, error) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 || i > tpm.MaxPCR {
		return 0, fmt.Errorf("PCR index %q: want 0-%d", s, tpm.MaxPCR)
	}
	return i, nil
}

func parsePCRList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		i, err := parsePCR(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, nil
}

func parseIndex(s string) (uint32, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 32)
	if err != nil {
		return 0, fmt.Errorf("index %q: want hex like 4d47", s)
	}
	return uint32(v), nil
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

// seal: file index pcrs pcrfile size [pass] [ownerpass], as Heads' tpmr.
func seal(t *tpm.TPM, args []string) error {
	if len(args) < 5 {
		return errUsage
	}
	secret, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	defer wipe(secret)
	idx, err := parseIndex(args[1])
	if err != nil {
		return err
	}
	pcrs, err := parsePCRList(args[2])
	if err != nil {
		return err
	}
	vals, err := os.ReadFile(args[3])
	if err != nil {
		return err
	}
	size := t.Family().PCRSize()
	if len(vals) != size*len(pcrs) {
		return fmt.Errorf("%s: %d bytes, want %d (%d PCRs of %d bytes)", args[3], len(vals), size*len(pcrs), len(pcrs), size)
	}
	m := map[int][]byte{}
	for i, p := range pcrs {
		m[p] = vals[i*size : (i+1)*size]
	}
	return t.Seal(tpm.SealOptions{Index: idx, Secret: secret, PCRs: m, Passphrase: optArg(args, 5), OwnerAuth: optArg(args, 6)})
}

// unseal: index pcrs size outfile [pass].
func unseal(t *tpm.TPM, args []string) error {
	if len(args) < 4 {
		return errUsage
	}
	idx, err := parseIndex(args[0])
	if err != nil {
		return err
	}
	pcrs, err := parsePCRList(args[1])
	if err != nil {
		return err
	}
	secret, err := t.Unseal(tpm.UnsealOptions{Index: idx, PCRs: pcrs, Passphrase: optArg(args, 4)})
	if err != nil {
		return err
	}
	defer wipe(secret)
	return os.WriteFile(args[3], secret, 0o600)
}

func flags(args []string) (map[string]string, error) {
	m := map[string]string{}
	for len(args) >= 2 && strings.HasPrefix(args[0], "-") {
		m[args[0]] = args[1]
		args = args[2:]
	}
	if len(args) != 0 {
		return nil, errUsage
	}
	return m, nil
}

func counterCreate(t *tpm.TPM, stdout io.Writer, args []string) error {
	f, err := flags(args)
	if err != nil {
		return err
	}
	owner, ok := f["-pwdo"]
	if !ok {
		return fmt.Errorf("counter_create needs the TPM owner passphrase (-pwdo)")
	}
	id, err := t.CounterCreate([]byte(owner))
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: (valid after an increment)\n", id)
	return err
}

func counter(t *tpm.TPM, stdout io.Writer, verb string, args []string) error {
	f, err := flags(args)
	if err != nil {
		return err
	}
	id := f["-ix"]
	if id == "" {
		return errUsage
	}
	var c *tpm.Counter
	if verb == "counter_read" {
		c, err = t.CounterRead(id)
	} else {
		c, err = t.CounterIncrement(id)
	}
	if err != nil {
		return err
	}
	_, err = stdout.Write(c.File)
	return err
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
