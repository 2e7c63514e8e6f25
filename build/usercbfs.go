package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/goheads/goheads/pkg/cbfs"
)

// FwCfgCBFS is the fw_cfg name init reads (cbfs.DefaultFwCfg).
const FwCfgCBFS = "opt/goheads/cbfs"

// userCBFSPath is out/<board>/cbfs.img: the QEMU board's "flash" user area.
// Like the TPM state in vtpm/, it is kept across builds.
func (o *Options) userCBFSPath(b *Board) string { return filepath.Join(o.OutDir(b), "cbfs.img") }

// ensureUserCBFS creates an empty CBFS image for a QEMU board if there is
// none yet.
func ensureUserCBFS(o *Options, b *Board) (string, error) {
	p := o.userCBFSPath(b)
	if st, err := os.Stat(p); err == nil {
		if st.Size() > 64<<10 {
			// Made by an older builder (1 MiB, slow to read): repack.
			return p, repackUserCBFS(p)
		}
		return p, nil
	}
	// As small as it can be (cbfs.Fit): the guest reads fw_cfg slowly.
	img, err := cbfs.Fit(nil)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	return p, img.WriteFile(p)
}

// InjectGPG writes the owner's public key (and optionally a config.user)
// into the board's CBFS as Heads' `make inject_gpg` does: heads/initrd/.gnupg/
// pubring.gpg (an OpenPGP packet stream Heads and goheads both read) and
// heads/initrd/etc/config.user.
func InjectGPG(ctx context.Context, o *Options, b *Board, pubkey, configUser string, w io.Writer) error {
	if pubkey == "" && configUser == "" {
		return errors.New("inject_gpg: give PUBKEY_ASC=<key.asc> and/or CONFIG_USER=<file>")
	}
	var p string
	var err error
	if b.Config.Bool("CONFIG_COREBOOT") {
		// Into the ROM itself, as Heads' inject_gpg does.
		p = o.romPath(b)
		if _, err := os.Stat(p); err != nil {
			return &fixError{what: "no ROM " + p, fix: "build it first: make BOARD=" + b.Name + " rom"}
		}
	} else if p, err = ensureUserCBFS(o, b); err != nil {
		return err
	}
	img, err := cbfs.OpenFile(p)
	if err != nil {
		return err
	}
	// Keep what is there (in order), replace or add the new files, and
	// write an image just large enough.
	var files []cbfs.Content
	put := func(name string, data []byte) {
		for i := range files {
			if files[i].Name == name {
				files[i].Data = data
				return
			}
		}
		files = append(files, cbfs.Content{Name: name, Data: data, Type: cbfs.TypeRaw})
	}
	old, err := cbfs.UserFiles(img)
	img.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	for _, f := range old {
		put(f.Name, f.Data)
	}
	if pubkey != "" {
		raw, err := os.ReadFile(pubkey)
		if err != nil {
			return err
		}
		if blk, err := armor.Decode(bytes.NewReader(raw)); err == nil {
			if raw, err = io.ReadAll(blk.Body); err != nil {
				return fmt.Errorf("%s: %w", pubkey, err)
			}
		}
		put(cbfs.UserPrefix+".gnupg/pubring.gpg", raw)
		fmt.Fprintf(w, "build: %s: heads/initrd/.gnupg/pubring.gpg from %s\n", p, pubkey)
	}
	if configUser != "" {
		raw, err := os.ReadFile(configUser)
		if err != nil {
			return err
		}
		put(cbfs.ConfigUserName, raw)
		fmt.Fprintf(w, "build: %s: %s from %s\n", p, cbfs.ConfigUserName, configUser)
	}
	if b.Config.Bool("CONFIG_COREBOOT") {
		rom, err := cbfs.OpenFile(p)
		if err != nil {
			return err
		}
		defer rom.Close()
		for _, f := range files {
			if err := rom.Replace(f.Name, f.Data, f.Type); err != nil {
				return fmt.Errorf("%s: %s: %w", p, f.Name, err)
			}
		}
		// PCR 7 changes with the owner's files: predict it again.
		r, err := writeROM(o, b, rom)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "build: %s: expected PCR 7 now %s\n", r.Path, r.Prediction.PCRs["sha256"]["7"])
		return nil
	}
	out, err := cbfs.Fit(files)
	if err != nil {
		return err
	}
	return out.WriteFile(p)
}

// repackUserCBFS rewrites the image at p with the same user files, as
// small as they fit.
func repackUserCBFS(p string) error {
	img, err := cbfs.OpenFile(p)
	if err != nil {
		return err
	}
	files, err := cbfs.UserFiles(img)
	img.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	var cs []cbfs.Content
	for _, f := range files {
		cs = append(cs, cbfs.Content{Name: f.Name, Data: f.Data, Type: cbfs.TypeRaw})
	}
	out, err := cbfs.Fit(cs)
	if err != nil {
		return err
	}
	return out.WriteFile(p)
}
