// Package pcrpredict computes, from a coreboot ROM image, the PCR values the
// firmware will produce when it boots: PCR 2 (coreboot's static root of
// trust: the FMAP and every stage and payload it loads, in load order) and
// PCR 7 (the owner's heads/initrd/* files, which the initramfs measures in
// CBFS order). With it a secret can be resealed to a ROM before it is
// flashed, so the first boot after an update shows a valid TOTP code
// (Heads issue 523: Heads cannot, the owner must reseal after the update).
//
// coreboot (src/security/tpm/tspi/crtm.c, src/lib/cbfs.c) measures:
//   - "FMAP: FMAP": the whole FMAP area;
//   - "CBFS: <name>" for each CBFS file it loads: the digest of the bytes as
//     stored in CBFS (compressed, if the file is compressed), h.len of them.
//
// Which files a board loads is a property of the board (q35: bootblock,
// romstage, postcar, ramstage, payload; real boards add e.g. cmos_layout.bin
// or vbt.bin), so it is an input (Options.Files), checked against the event
// log of a real boot by the VM tests.
package pcrpredict

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"

	"github.com/goheads/goheads/pkg/atomicfile"
	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/measure"
)

// PCRs coreboot and the initramfs use.
const (
	PCRSRTM    = 2 // CONFIG_PCR_SRTM
	PCRRuntime = 3 // CONFIG_PCR_RUNTIME_DATA: MRC cache and allow-listed runtime data
	PCRConfig  = 7 // the initramfs' cbfs-init (Heads' CONFIG_PCR)
)

// DefaultFiles are the CBFS files coreboot loads, in order, on x86 boards
// with the bootblock in CBFS and no vboot (the emulation/qemu-q35 board).
var DefaultFiles = []string{"bootblock", "fallback/romstage", "fallback/postcar", "fallback/ramstage", "fallback/payload"}

// ErrNotCoreboot means the image has no FMAP or lacks a file the board
// loads: it is not a coreboot ROM this prediction applies to.
var ErrNotCoreboot = errors.New("not a coreboot ROM with measured boot")

// Options say what to predict.
type Options struct {
	// Files are the CBFS files coreboot loads, in load order
	// (DefaultFiles if nil).
	Files []string
	// UserFiles, if set, replace the ROM's own heads/initrd/* files in the
	// PCR 7 prediction (flash keeps the owner's files in the new ROM).
	UserFiles []measure.UserFile
	// KeepUserFiles says UserFiles is meaningful even when empty.
	KeepUserFiles bool
}

// Event is one predicted measurement.
type Event struct {
	PCR    int    `json:"pcr"`
	Name   string `json:"name"`
	SHA1   string `json:"sha1"`
	SHA256 string `json:"sha256"`
}

// Prediction is what a ROM will put in the PCRs it owns. PCRs maps bank
// ("sha1", "sha256") to PCR index (decimal string, as JSON keys must be) to
// hex value. TPM 2.0 coreboot extends SHA-256 (CONFIG_TPM_HASH_SHA256),
// TPM 1.2 SHA-1; both banks are given so one file serves either family.
type Prediction struct {
	ROMSHA256 string                       `json:"rom_sha256"`
	Events    []Event                      `json:"events"`
	PCRs      map[string]map[string]string `json:"pcrs"`
}

// Predict computes the prediction for the ROM image rom.
func Predict(rom []byte, o Options) (*Prediction, error) {
	img, err := cbfs.Open(rom)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	if img.FMAP() == nil {
		return nil, fmt.Errorf("%w: no FMAP (coreboot measures it first)", ErrNotCoreboot)
	}
	files := o.Files
	if files == nil {
		files = DefaultFiles
	}
	p := &Prediction{ROMSHA256: hexSum(sha256.New(), rom)}
	fm, err := img.ReadArea(cbfs.AreaFMAP)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCoreboot, err)
	}
	p.add(PCRSRTM, "FMAP: FMAP", fm)
	for _, name := range files {
		if _, err := img.Lookup(name); err != nil {
			return nil, fmt.Errorf("%w: the board loads CBFS %q, which the ROM lacks", ErrNotCoreboot, name)
		}
		data, err := img.ReadRaw(name)
		if err != nil {
			return nil, err
		}
		p.add(PCRSRTM, "CBFS: "+name, data)
	}

	user := o.UserFiles
	if user == nil && !o.KeepUserFiles {
		uf, err := cbfs.UserFiles(img)
		if err != nil {
			return nil, err
		}
		for _, f := range uf {
			user = append(user, measure.UserFile{Name: f.Name, Data: f.Data})
		}
	}
	for _, f := range user {
		ms, err := f.Measurements()
		if err != nil {
			// cbfs-init measures an unusable file's raw name and content.
			ms = [][]byte{[]byte(f.Name), f.Data}
		}
		for _, m := range ms {
			p.add(PCRConfig, "CBFS "+f.Name, m)
		}
	}
	p.replay()
	return p, nil
}

func (p *Prediction) add(pcr int, name string, data []byte) {
	p.Events = append(p.Events, Event{PCR: pcr, Name: name, SHA1: hexSum(sha1.New(), data), SHA256: hexSum(sha256.New(), data)})
}

// replay folds the events into PCR values, from all-zero PCRs (PCR 2 and 7
// are zero at reset; nothing else extends them before the initramfs).
func (p *Prediction) replay() {
	p.PCRs = map[string]map[string]string{"sha1": {}, "sha256": {}}
	for _, bank := range []string{"sha1", "sha256"} {
		vals := map[int][]byte{}
		for _, pcr := range []int{PCRSRTM, PCRConfig} {
			vals[pcr] = make([]byte, newHash(bank).Size())
		}
		for _, e := range p.Events {
			d := e.SHA256
			if bank == "sha1" {
				d = e.SHA1
			}
			digest, _ := hex.DecodeString(d)
			h := newHash(bank)
			h.Write(vals[e.PCR])
			h.Write(digest)
			vals[e.PCR] = h.Sum(nil)
		}
		for pcr, v := range vals {
			p.PCRs[bank][strconv.Itoa(pcr)] = hex.EncodeToString(v)
		}
	}
}

// PCR returns the predicted value of pcr in bank ("sha1" or "sha256").
func (p *Prediction) PCR(bank string, pcr int) ([]byte, error) {
	v, ok := p.PCRs[bank][strconv.Itoa(pcr)]
	if !ok {
		return nil, fmt.Errorf("prediction has no %s PCR %d", bank, pcr)
	}
	return hex.DecodeString(v)
}

func newHash(bank string) hash.Hash {
	if bank == "sha1" {
		return sha1.New()
	}
	return sha256.New()
}

func hexSum(h hash.Hash, b []byte) string {
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// WriteFile writes p as indented JSON (expected-pcrs.json).
func (p *Prediction) WriteFile(path string) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// ReadFile reads an expected-pcrs.json.
func ReadFile(path string) (*Prediction, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Prediction
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}
