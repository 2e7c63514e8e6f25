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

// userCBFSSize is the size of the CBFS image QEMU boards without coreboot
// get through fw_cfg in place of the flash's CBFS: room for a keyring and
// the owner's settings.
const userCBFSSize = 1 << 20

// FwCfgCBFS is the fw_cfg name init reads (cbfs.DefaultFwCfg).
const FwCfgCBFS = "opt/goheads/cbfs"

// userCBFSPath is out/<board>/cbfs.img: the QEMU board's "flash" user area.
// Like the TPM state in vtpm/, it is kept across builds.
func (o *Options) userCBFSPath(b *Board) string { return filepath.Join(o.OutDir(b), "cbfs.img") }

// ensureUserCBFS creates an empty CBFS image for a QEMU board if there is
// none yet.
func ensureUserCBFS(o *Options, b *Board) (string, error) {
	p := o.userCBFSPath(b)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	img, err := cbfs.Create(userCBFSSize, cbfs.CreateOptions{})
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
	if b.Config.Bool("CONFIG_COREBOOT") {
		return &fixError{what: "board " + b.Name + " has a ROM", fix: "inject into the ROM with `make BOARD=" + b.Name + " rom inject_gpg` (ROM support)"}
	}
	if pubkey == "" && configUser == "" {
		return errors.New("inject_gpg: give PUBKEY_ASC=<key.asc> and/or CONFIG_USER=<file>")
	}
	p, err := ensureUserCBFS(o, b)
	if err != nil {
		return err
	}
	img, err := cbfs.OpenFile(p)
	if err != nil {
		return err
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
		if err := img.Replace(cbfs.UserPrefix+".gnupg/pubring.gpg", raw, cbfs.TypeRaw); err != nil {
			return err
		}
		fmt.Fprintf(w, "build: %s: heads/initrd/.gnupg/pubring.gpg from %s\n", p, pubkey)
	}
	if configUser != "" {
		raw, err := os.ReadFile(configUser)
		if err != nil {
			return err
		}
		if err := img.Replace(cbfs.ConfigUserName, raw, cbfs.TypeRaw); err != nil {
			return err
		}
		fmt.Fprintf(w, "build: %s: %s from %s\n", p, cbfs.ConfigUserName, configUser)
	}
	return img.WriteFile(p)
}
