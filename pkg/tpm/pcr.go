package tpm

import (
	"bufio"
	"crypto"
	_ "crypto/sha1" // registered for bank digests
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-tpm/tpm2"
)

// MaxPCR is the highest PCR index the TPM layer accepts (PC Client TPMs have 24).
const MaxPCR = 23

// bank is one active TPM 2.0 PCR bank.
type bank struct {
	alg  tpm2.TPMAlgID
	hash crypto.Hash
}

var bankHashes = map[tpm2.TPMAlgID]crypto.Hash{
	tpm2.TPMAlgSHA1:   crypto.SHA1,
	tpm2.TPMAlgSHA256: crypto.SHA256,
	tpm2.TPMAlgSHA384: crypto.SHA384,
	tpm2.TPMAlgSHA512: crypto.SHA512,
}

func checkPCR(idx int) error {
	if idx < 0 || idx > MaxPCR {
		return fmt.Errorf("PCR %d out of range 0-%d", idx, MaxPCR)
	}
	return nil
}

// ReadPCRs reads the given PCRs from the bank Heads uses (SHA-1 on TPM 1.2,
// SHA-256 on TPM 2.0). On TPM 2.0 one command reads up to eight PCRs.
func (t *TPM) ReadPCRs(idx ...int) (map[int][]byte, error) {
	out := make(map[int][]byte, len(idx))
	for _, i := range idx {
		if err := checkPCR(i); err != nil {
			return nil, err
		}
	}
	if t.fam == Family12 {
		for _, i := range idx {
			v, err := t.pcrRead12(i)
			if err != nil {
				return nil, fmt.Errorf("read PCR %d: %w", i, err)
			}
			out[i] = v
		}
		return out, nil
	}
	pending := append([]int(nil), idx...)
	for len(pending) > 0 {
		sel := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{
			Hash:      tpm2.TPMAlgSHA256,
			PCRSelect: tpm2.PCClientCompatible.PCRs(toUint(pending)...),
		}}}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: sel}.Execute(t.t)
		if err != nil {
			return nil, wrap20("read PCRs", err)
		}
		got := selectedPCRs(rsp.PCRSelectionOut)
		if len(got) == 0 || len(got) != len(rsp.PCRValues.Digests) {
			return nil, fmt.Errorf("read PCRs %v: TPM returned %d values for %d PCRs (is the SHA-256 bank active?)", pending, len(rsp.PCRValues.Digests), len(got))
		}
		for k, i := range got {
			out[i] = rsp.PCRValues.Digests[k].Buffer
		}
		var rest []int
		for _, i := range pending {
			if _, ok := out[i]; !ok {
				rest = append(rest, i)
			}
		}
		pending = rest
	}
	return out, nil
}

func toUint(idx []int) []uint {
	u := make([]uint, len(idx))
	for i, v := range idx {
		u[i] = uint(v)
	}
	return u
}

// selectedPCRs lists, in ascending order, the SHA-256 PCRs a selection names;
// the TPM returns digests in that order.
func selectedPCRs(sel tpm2.TPMLPCRSelection) []int {
	var out []int
	for _, s := range sel.PCRSelections {
		if s.Hash != tpm2.TPMAlgSHA256 {
			continue
		}
		for byteIdx, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) != 0 {
					out = append(out, byteIdx*8+bit)
				}
			}
		}
	}
	return out
}

// ReadPCR reads one PCR.
func (t *TPM) ReadPCR(idx int) ([]byte, error) {
	m, err := t.ReadPCRs(idx)
	if err != nil {
		return nil, err
	}
	return m[idx], nil
}

// Ping checks that the TPM answers, with a command the boot needs anyway
// (TPM 2.0: the PCR banks, which every extend uses; TPM 1.2: PCR 0).
func (t *TPM) Ping() error {
	if t.Family() == Family20 {
		_, err := t.activeBanks()
		return err
	}
	_, err := t.ReadPCR(0)
	return err
}

// activeBanks returns the TPM 2.0 PCR banks that are allocated, once.
func (t *TPM) activeBanks() ([]bank, error) {
	if t.banks != nil {
		return t.banks, nil
	}
	rsp, err := tpm2.GetCapability{Capability: tpm2.TPMCapPCRs, Property: 0, PropertyCount: 1}.Execute(t.t)
	if err != nil {
		return nil, wrap20("read PCR banks", err)
	}
	sels, err := rsp.CapabilityData.Data.AssignedPCR()
	if err != nil {
		return nil, fmt.Errorf("read PCR banks: %w", err)
	}
	var banks []bank
	for _, s := range sels.PCRSelections {
		h, known := bankHashes[s.Hash]
		active := false
		for _, b := range s.PCRSelect {
			active = active || b != 0
		}
		if active && known {
			banks = append(banks, bank{alg: s.Hash, hash: h})
		}
	}
	if len(banks) == 0 {
		return nil, errors.New("read PCR banks: the TPM reports no active bank goheads can extend")
	}
	t.banks = banks
	return banks, nil
}

// Measure extends PCR idx with the hash of data, as Heads' `tpmr extend -ic`
// (a string) and `-if` (a file's contents) do: on TPM 1.2 the SHA-1 of data;
// on TPM 2.0 every active bank receives the digest of data in its own
// algorithm, so no bank is left stale (Heads extends only SHA-256; the
// SHA-256 value is the same either way). desc goes to the measurement log.
func (t *TPM) Measure(idx int, data []byte, desc string) error {
	if err := checkPCR(idx); err != nil {
		return err
	}
	if t.fam == Family12 {
		d := crypto.SHA1.New()
		d.Write(data)
		return t.extendDigests(idx, map[string][]byte{"sha1": d.Sum(nil)}, desc)
	}
	banks, err := t.activeBanks()
	if err != nil {
		return err
	}
	ds := make(map[string][]byte, len(banks))
	for _, b := range banks {
		h := b.hash.New()
		h.Write(data)
		ds[algName(b.hash)] = h.Sum(nil)
	}
	return t.extendDigests(idx, ds, desc)
}

// ExtendDigest extends PCR idx with a precomputed digest in the Heads bank
// (20 bytes on TPM 1.2, 32 on TPM 2.0), as `tpmr extend -ix i -ih hex`.
// On TPM 2.0 only the SHA-256 bank is extended: the other banks' digests of
// the same input are unknown.
func (t *TPM) ExtendDigest(idx int, digest []byte, desc string) error {
	if err := checkPCR(idx); err != nil {
		return err
	}
	if len(digest) != t.fam.PCRSize() {
		return fmt.Errorf("extend PCR %d: digest is %d bytes, want %d", idx, len(digest), t.fam.PCRSize())
	}
	name := "sha256"
	if t.fam == Family12 {
		name = "sha1"
	}
	return t.extendDigests(idx, map[string][]byte{name: digest}, desc)
}

func algName(h crypto.Hash) string {
	switch h {
	case crypto.SHA1:
		return "sha1"
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return h.String()
}

var algIDs = map[string]tpm2.TPMAlgID{
	"sha1": tpm2.TPMAlgSHA1, "sha256": tpm2.TPMAlgSHA256,
	"sha384": tpm2.TPMAlgSHA384, "sha512": tpm2.TPMAlgSHA512,
}

func (t *TPM) extendDigests(idx int, ds map[string][]byte, desc string) error {
	if t.fam == Family12 {
		if _, err := t.extend12(idx, ds["sha1"]); err != nil {
			return fmt.Errorf("extend PCR %d: %w", idx, err)
		}
	} else {
		names := make([]string, 0, len(ds))
		for n := range ds {
			names = append(names, n)
		}
		sort.Strings(names)
		var vals tpm2.TPMLDigestValues
		for _, n := range names {
			vals.Digests = append(vals.Digests, tpm2.TPMTHA{HashAlg: algIDs[n], Digest: ds[n]})
		}
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(idx), Auth: tpm2.PasswordAuth(nil)},
			Digests:   vals,
		}.Execute(t.t)
		if err != nil {
			return wrap20(fmt.Sprintf("extend PCR %d", idx), err)
		}
	}
	if t.Log != nil {
		if err := t.Log.Append(Measurement{PCR: idx, Digests: ds, Desc: desc}); err != nil {
			return fmt.Errorf("extend PCR %d: record measurement: %w", idx, err)
		}
	}
	return nil
}

// Random returns n bytes from the TPM's RNG.
func (t *TPM) Random(n int) ([]byte, error) {
	if t.fam == Family12 {
		return t.random12(n)
	}
	var out []byte
	for len(out) < n {
		want := n - len(out)
		if want > 32 {
			want = 32
		}
		rsp, err := tpm2.GetRandom{BytesRequested: uint16(want)}.Execute(t.t)
		if err != nil {
			return nil, wrap20("get random", err)
		}
		if len(rsp.RandomBytes.Buffer) == 0 {
			return nil, errors.New("get random: TPM returned no bytes")
		}
		out = append(out, rsp.RandomBytes.Buffer...)
	}
	return out[:n], nil
}

// Measurement is one extend as recorded in the runtime measurement log.
type Measurement struct {
	PCR     int
	Digests map[string][]byte // bank name ("sha1", "sha256"...) -> digest extended
	Desc    string
}

// MeasurementLog is the runtime log of what goheads extended, so the menu
// can show what was measured and tests can replay it. One line per extend:
//
//	<pcr> <alg>:<hex>[,<alg>:<hex>...] <description>
//
// The description is free text up to the end of the line (newlines in it are
// replaced by spaces).
type MeasurementLog struct {
	mu   sync.Mutex
	Path string
}

// Append writes one record.
func (l *MeasurementLog) Append(m Measurement) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, m.line()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (m Measurement) line() string {
	names := make([]string, 0, len(m.Digests))
	for n := range m.Digests {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ":" + hex.EncodeToString(m.Digests[n])
	}
	desc := strings.NewReplacer("\n", " ", "\r", " ").Replace(m.Desc)
	return fmt.Sprintf("%d %s %s\n", m.PCR, strings.Join(parts, ","), desc)
}

// ReadMeasurementLog parses a runtime measurement log.
func ReadMeasurementLog(r io.Reader) ([]Measurement, error) {
	var out []Measurement
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 {
			return nil, fmt.Errorf("measurement log line %d: want '<pcr> <alg>:<hex> <desc>'", n)
		}
		pcr, err := strconv.Atoi(f[0])
		if err != nil || checkPCR(pcr) != nil {
			return nil, fmt.Errorf("measurement log line %d: bad PCR %q", n, f[0])
		}
		m := Measurement{PCR: pcr, Digests: map[string][]byte{}}
		if len(f) == 3 {
			m.Desc = f[2]
		}
		for _, p := range strings.Split(f[1], ",") {
			alg, hx, ok := strings.Cut(p, ":")
			d, err := hex.DecodeString(hx)
			if !ok || err != nil {
				return nil, fmt.Errorf("measurement log line %d: bad digest %q", n, p)
			}
			m.Digests[alg] = d
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
