package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/goheads/goheads/pkg/luks"
)

// benchLUKS measures unlocking a volume with the disk unlock key goheads
// adds (its KDF is luks.DefaultKDF), next to the recovery passphrase's
// slot as cryptsetup made it with its defaults on this machine. Volumes
// are made by the real cryptsetup; the key is added by pkg/luks.
func benchLUKS(runs int) ([]benchRow, error) {
	if _, err := exec.LookPath("cryptsetup"); err != nil {
		return nil, fmt.Errorf("cryptsetup not found; install it: apt-get install cryptsetup-bin")
	}
	dir, err := os.MkdirTemp("", "goheads-bench-luks-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	drk := []byte("bench recovery passphrase")
	duk := make([]byte, 128)
	for i := range duk {
		duk[i] = byte(i * 7)
	}
	var rows []benchRow
	for _, v := range []struct{ name, typ, pbkdf string }{
		{"LUKS2", "luks2", "argon2id"},
		{"LUKS1", "luks1", "pbkdf2"},
	} {
		img := filepath.Join(dir, v.typ+".img")
		if err := os.WriteFile(img, nil, 0o600); err != nil {
			return nil, err
		}
		if err := os.Truncate(img, 32<<20); err != nil {
			return nil, err
		}
		cmd := exec.Command("cryptsetup", "luksFormat", "--batch-mode", "--type", v.typ, "--pbkdf", v.pbkdf, "--key-file", "-", img)
		cmd.Stdin = strings.NewReader(string(drk))
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("cryptsetup luksFormat %s: %v: %s", v.typ, err, out)
		}
		d, err := luks.Open(img, luks.Options{})
		if err != nil {
			return nil, err
		}
		if err := d.AddKey(drk, duk, d.DUKSlot(), luks.AddOptions{}); err != nil {
			d.Close()
			return nil, fmt.Errorf("%s: add the disk unlock key: %w", img, err)
		}
		time1 := func(key []byte, slot int) (time.Duration, error) {
			start := time.Now()
			u, err := d.UnlockSlot(key, slot)
			el := time.Since(start)
			if err != nil {
				return 0, err
			}
			u.Close()
			return el, nil
		}
		var dukT []time.Duration
		for i := 0; i < runs; i++ {
			t, err := time1(duk, d.DUKSlot())
			if err != nil {
				d.Close()
				return nil, err
			}
			dukT = append(dukT, t)
		}
		drkT, err := time1(drk, 0)
		slots := d.Slots()
		d.Close()
		if err != nil {
			return nil, err
		}
		rows = append(rows,
			benchRow{fmt.Sprintf("%s unlock, disk unlock key (slot %d)", v.name, slots[len(slots)-1].Index), median(dukT).Round(100 * time.Microsecond).String(), "<= 2 s",
				fmt.Sprintf("%s; median of %d", slots[len(slots)-1].KDF, runs)},
			benchRow{fmt.Sprintf("%s unlock, recovery passphrase (slot 0)", v.name), drkT.Round(time.Millisecond).String(), "",
				"cryptsetup's defaults here: " + slots[0].KDF.String()})
	}
	return rows, nil
}
