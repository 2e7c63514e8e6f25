package session

import (
	"errors"
	"fmt"
	"strings"

	"github.com/goheads/goheads/pkg/attest"
	"github.com/goheads/goheads/pkg/bootdisk"
	"github.com/goheads/goheads/pkg/bootsign"
	"github.com/goheads/goheads/pkg/cbfs"
	"github.com/goheads/goheads/pkg/diskkey"
	"github.com/goheads/goheads/pkg/flash"
	"github.com/goheads/goheads/pkg/hotpkey"
	"github.com/goheads/goheads/pkg/otp"
	"github.com/goheads/goheads/pkg/pcrpredict"
	"github.com/goheads/goheads/pkg/selectboot"
	"github.com/goheads/goheads/pkg/tpm"
)

var attestClockErr = otp.ErrClockNotSet

// Severity colours a screen as Heads does.
type Severity int

const (
	Normal  Severity = iota
	Warning          // yellow
	Error            // red
)

// Explanation is a failure in plain words: what was checked, what it may
// mean, and what to do next.
type Explanation struct {
	Severity Severity
	Title    string
	// Summary is one line naming the check and what differed.
	Summary string
	// Meaning says what could cause it: an update, or tampering.
	Meaning string
	// Next lists safe next steps.
	Next []string
	// Files lists files that changed, appeared or disappeared.
	Files []string
}

// pcrMeaning says what a PCR covers.
var pcrMeaning = map[int]string{
	0: "firmware code (not used by coreboot: should stay zero)",
	1: "firmware configuration (not used by coreboot)",
	2: "the firmware itself: coreboot's stages and the goheads kernel and initramfs",
	3: "firmware data (not used by coreboot)",
	4: "the boot mode: a recovery shell or USB boot in this boot changes it until a reboot",
	5: "kernel modules goheads loaded",
	6: "the LUKS headers of the encrypted disks",
	7: "the owner's settings and GPG keyring stored in the ROM (CBFS)",
}

// Explain turns an error from any goheads layer into words for the owner.
func Explain(err error) Explanation {
	if err == nil {
		return Explanation{Severity: Normal, Title: "OK", Summary: "No problem found."}
	}
	var pe *tpm.PolicyError
	var he *bootsign.HashError
	var le *tpm.LockoutError
	var nf *bootdisk.NotFoundError
	switch {
	case errors.Is(err, diskkey.ErrHeadersChanged):
		return Explanation{Severity: Error, Title: "Encrypted disk keys have changed",
			Summary: "The LUKS headers of the disks differ from when the disk unlock key was sealed (kexec_lukshdr_hash.txt): a keyslot was added, removed or changed.",
			Meaning: "Expected after you changed a disk passphrase or added a key in the OS. Otherwise someone changed the disk's keys - possibly to capture the disk unlock key.",
			Next: []string{"If you changed the disk's keys: boot with the Disk Recovery Key, then reseal the disk unlock key (Boot options -> make the entry default and seal a disk key).",
				"If you did not: do not type the disk passphrase on this machine; investigate."}}
	case errors.Is(err, diskkey.ErrNotUnsealed):
		x := Explanation{Severity: Error, Title: "Disk unlock key did not unseal",
			Summary: "The TPM did not release the disk unlock key: " + err.Error() + ".",
			Meaning: "A wrong passphrase, or the firmware, its settings or the disk headers changed since the key was sealed.",
			Next: []string{"Boot without the key and type the Disk Recovery Key when the OS asks.",
				"Then reseal the disk unlock key if the change was yours."}}
		switch {
		case errors.As(err, &pe) && len(pe.PCRs) > 0:
			var parts []string
			for _, p := range pe.PCRs {
				parts = append(parts, fmt.Sprintf("PCR %d (%s)", p, pcrMeaning[p]))
			}
			x.Summary = "Changed since the disk key was sealed: " + strings.Join(parts, "; ") + "."
		case errors.Is(err, tpm.ErrBadAuth):
			x.Severity = Warning
			x.Summary = "The disk unlock key passphrase was wrong " + fmt.Sprint(diskkey.Tries) + " times."
			x.Meaning = "A typo, or a passphrase from another machine."
		case errors.Is(err, tpm.ErrNotProvisioned):
			x.Summary = "The TPM holds no disk unlock key (it was reset, or the key never sealed)."
		}
		return x
	case errors.Is(err, diskkey.ErrPassphrase):
		return Explanation{Severity: Warning, Title: "Passphrase not accepted", Summary: err.Error() + ".",
			Next: []string{fmt.Sprintf("Choose a disk unlock key passphrase of at least %d characters and type it the same twice.", diskkey.MinPassphrase)}}
	case errors.As(err, &pe):
		x := Explanation{Severity: Error, Title: "TOTP/HOTP secret did not unseal",
			Summary: "The firmware's measurements differ from those the secret was sealed to.",
			Meaning: "This happens after a firmware update or a change of ROM settings or keys - or if the firmware was tampered with.",
			Next: []string{"If you just updated the firmware or changed its settings: check /boot's integrity, then generate a new TOTP/HOTP secret.",
				"If you did not: do not type passwords on this machine; treat it as tampered.",
				"A recovery shell or USB boot in this boot also causes this: reboot first."}}
		if len(pe.PCRs) > 0 {
			var parts []string
			for _, p := range pe.PCRs {
				parts = append(parts, fmt.Sprintf("PCR %d (%s)", p, pcrMeaning[p]))
			}
			x.Summary = "Changed since sealing: " + strings.Join(parts, "; ") + "."
			if len(pe.PCRs) == 1 && pe.PCRs[0] == 4 {
				x.Meaning = "A recovery shell or a USB boot happened in this boot, so the TPM refuses the secret until the next boot. This is expected after using the recovery shell."
				x.Severity = Warning
				x.Next = []string{"Reboot: the code will show again."}
			}
		}
		return x
	case errors.As(err, &le):
		return Explanation{Severity: Error, Title: "TPM locked out",
			Summary: le.Error() + ".",
			Meaning: "Too many wrong passphrases were tried (unclean power-offs count too). The TPM refuses secrets for a while.",
			Next:    []string{"Wait, then try again.", "Or reset the TPM (Options -> TPM/TOTP/HOTP) and seal new secrets."}}
	case errors.Is(err, tpm.ErrBadAuth):
		return Explanation{Severity: Warning, Title: "Wrong passphrase", Summary: "The TPM rejected the passphrase.",
			Next: []string{"Try again. Each wrong try counts towards the TPM's lockout (10 tries, one forgiven per hour)."}}
	case errors.Is(err, attest.ErrPCRAlreadyExtended):
		return Explanation{Severity: Warning, Title: "Cannot seal in this boot", Summary: err.Error(),
			Next: []string{"Reboot, and generate the secret before entering a recovery shell or booting from USB."}}
	case errors.Is(err, tpm.ErrNotProvisioned):
		return Explanation{Severity: Error, Title: "No secret in the TPM",
			Summary: "The TPM holds no TOTP/HOTP secret for this firmware (" + err.Error() + ").",
			Meaning: "Normal after a TPM reset or on first use. Otherwise the TPM was cleared or replaced.",
			Next:    []string{"Generate a new TOTP/HOTP secret (Options -> TPM/TOTP/HOTP).", "If the TPM was never set up: Reset the TPM first."}}
	case errors.Is(err, tpm.ErrNoTPM):
		return Explanation{Severity: Error, Title: "No TPM", Summary: "No TPM was found.",
			Meaning: "Without a TPM nothing proves this firmware is untampered.",
			Next:    []string{"Check the TPM is enabled and connected.", "You can still boot a verified /boot."}}
	case errors.Is(err, otp.ErrClockNotSet):
		return Explanation{Severity: Warning, Title: "Clock not set", Summary: err.Error() + ".",
			Meaning: "A TOTP code for the wrong time never matches your phone; this is not tampering.",
			Next:    []string{"Set the date and time (UTC), then refresh the code."}}
	case errors.Is(err, ErrGateArmed):
		return Explanation{Severity: Error, Title: "Integrity check required", Summary: err.Error() + ".",
			Next: []string{"Open the integrity report (Options -> Integrity report), check it, and confirm."}}
	case errors.As(err, &he):
		x := Explanation{Severity: Error, Title: "Boot Hash Mismatch",
			Summary: fmt.Sprintf("/boot differs from what you signed: %d changed, %d added, %d missing.", len(he.Changed), len(he.Added), len(he.Missing)),
			Meaning: "Expected after an OS kernel or initramfs update. Otherwise someone changed /boot.",
			Next:    []string{"If you updated the OS: Options -> Update checksums and sign /boot.", "If you did not: do not boot; investigate the files listed."}}
		for _, f := range he.Changed {
			x.Files = append(x.Files, "changed: "+f)
		}
		for _, f := range he.Added {
			x.Files = append(x.Files, "added:   "+f)
		}
		for _, f := range he.Missing {
			x.Files = append(x.Files, "missing: "+f)
		}
		return x
	case errors.Is(err, bootsign.ErrUnsigned):
		return Explanation{Severity: Warning, Title: "/boot is not signed",
			Summary: "There is no kexec.sig in /boot: nothing here has been verified.",
			Meaning: "Normal before the first signing. Otherwise the signature was removed.",
			Next:    []string{"Sign /boot with your key: Options -> Update checksums and sign /boot."}}
	case errors.Is(err, bootsign.ErrRollback):
		return Explanation{Severity: Error, Title: "Rollback counter mismatch", Summary: err.Error() + ".",
			Meaning: "An older signed /boot was put back, or the TPM was reset or replaced since the last signing.",
			Next:    []string{"If you reset the TPM: sign /boot again.", "Otherwise do not boot: an old, possibly vulnerable /boot is being replayed."}}
	case errors.Is(err, bootsign.ErrCounter):
		return Explanation{Severity: Error, Title: "TPM integrity counter cannot be read", Summary: err.Error() + ".",
			Meaning: "The TPM was reset or replaced since /boot was signed.",
			Next:    []string{"If you reset the TPM: sign /boot again.", "Otherwise suspect the TPM was swapped."}}
	case errors.Is(err, bootsign.ErrUnknownKey):
		return Explanation{Severity: Error, Title: "Signature by an unknown key", Summary: err.Error() + ".",
			Meaning: "/boot was signed with a key that is not in this ROM's keyring.",
			Next:    []string{"If you changed keys: add the new public key to the ROM.", "Otherwise do not boot."}}
	case errors.Is(err, bootsign.ErrRevokedKey), errors.Is(err, bootsign.ErrExpiredKey):
		return Explanation{Severity: Error, Title: "Signature by an unusable key", Summary: err.Error() + ".",
			Next: []string{"Sign /boot again with a current key."}}
	case errors.Is(err, bootsign.ErrBadSignature), errors.Is(err, bootsign.ErrMalformedSignature):
		return Explanation{Severity: Error, Title: "Invalid signature on boot hashes", Summary: err.Error() + ".",
			Meaning: "The signed manifests were changed, or kexec.sig was replaced.",
			Next:    []string{"Do not boot. Investigate, then sign /boot again if you made the change."}}
	case errors.Is(err, bootsign.ErrMissingManifest):
		return Explanation{Severity: Warning, Title: "Missing File!", Summary: err.Error() + ".",
			Next: []string{"Create and sign the manifests: Options -> Update checksums and sign /boot."}}
	case errors.Is(err, bootsign.ErrUnsignable):
		return Explanation{Severity: Error, Title: "Unsignable file name", Summary: err.Error() + ".",
			Next: []string{"Rename or remove the file (control characters, backslashes and non-ASCII bytes are refused)."}}
	case errors.As(err, &nf):
		x := Explanation{Severity: Error, Title: "No /boot Partition Found", Summary: nf.Error() + ".",
			Meaning: "goheads verifies an unencrypted /boot partition holding a GRUB, SYSLINUX or BootLoaderSpec configuration.",
			Next:    []string{"Set CONFIG_BOOT_DEV in Options -> Change configuration.", "Install an OS with a separate /boot."}}
		return x
	case errors.Is(err, selectboot.ErrDefaultChanged):
		return Explanation{Severity: Warning, Title: "Boot Entry Has Changed", Summary: err.Error() + ".",
			Meaning: "The OS rewrote its boot menu (usually a kernel update).",
			Next:    []string{"Options -> Boot options: choose an entry and make it the default."}}
	case errors.Is(err, ErrNoFlash):
		return Explanation{Severity: Warning, Title: "Firmware update not possible here", Summary: err.Error() + ".",
			Next: []string{"Flash the ROM from the OS (flashrom -p internal -w <rom>) or with an external SPI programmer."}}
	case errors.Is(err, flash.ErrFlashUnknownState):
		return Explanation{Severity: Error, Title: "FLASH WRITE FAILED - DO NOT POWER OFF", Summary: err.Error(),
			Meaning: "flashrom changed the flash chip and could not finish: the machine may not start again.",
			Next: []string{"Do not power off or reboot.", "Exit to the recovery shell and write the backup back with the command above.",
				"If that fails too: the backup on the USB disk and an external SPI programmer recover the machine."}}
	case errors.Is(err, flash.ErrFlashUnchanged):
		return Explanation{Severity: Warning, Title: "Firmware not updated", Summary: err.Error(),
			Meaning: "flashrom stopped before changing the chip: the current firmware is intact.",
			Next:    []string{"It is safe to reboot.", "Check CONFIG_FLASH_OPTIONS and that the flash is not write-protected."}}
	case errors.Is(err, cbfs.ErrWrongBoard), errors.Is(err, flash.ErrSizeMismatch), errors.Is(err, flash.ErrBadUpdate):
		return Explanation{Severity: Warning, Title: "Update refused", Summary: err.Error() + ".",
			Meaning: "Nothing was written: the file is not a ROM for this machine, or it is damaged.",
			Next:    []string{"Use the ROM (or Heads update .zip) built for this board, and check its download."}}
	case errors.Is(err, pcrpredict.ErrUnverified):
		return Explanation{Severity: Warning, Title: "Cannot carry the TOTP/HOTP secret over", Summary: err.Error() + ".",
			Meaning: "goheads cannot predict the new firmware's PCRs exactly on this machine, so it did not reseal and did not flash.",
			Next:    []string{"Flash without resealing, then generate a new TOTP/HOTP secret after the reboot."}}
	case errors.Is(err, attest.ErrNoHOTPCounter):
		return Explanation{Severity: Warning, Title: "HOTP not set up", Summary: err.Error() + ".",
			Next: []string{"Program the token: Options -> TPM/TOTP/HOTP -> Generate new secret."}}
	case errors.Is(err, hotpkey.ErrNoDevice):
		return Explanation{Severity: Warning, Title: "Please insert your security token", Summary: err.Error() + ".",
			Next: []string{"Insert the token and refresh, or continue without HOTP."}}
	case errors.Is(err, hotpkey.ErrWrongCode):
		return Explanation{Severity: Error, Title: "HOTP Validation Failed", Summary: "The token rejected the code.",
			Meaning: "The firmware may have been tampered with, or the token's counter fell out of step (booting several times without it).",
			Next:    []string{"Compare the TOTP code with your phone.", "If it matches: generate a new secret to resync the token."}}
	}
	return Explanation{Severity: Error, Title: "Error", Summary: err.Error() + "."}
}
